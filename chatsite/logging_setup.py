"""Logging of every process of the chat: one format for all of its lines.

Django calls `configure` with settings.LOGGING (LOGGING_CONFIG). Every line, daphne's
access lines included, then has the same shape: plain text, or with LOG_FORMAT=json one
JSON object per line; times are ISO 8601 in UTC with a `Z`, whatever the machine's zone.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

access_log = logging.getLogger("daphne.access")


def utc_time(record: logging.LogRecord) -> str:
    """Return when the record was made, e.g. `2026-12-05T10:00:00.123Z`."""
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PlainFormatter(logging.Formatter):
    """A line of text whose time is ISO 8601 in UTC."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)


class JsonFormatter(_JsonFormatter):
    """One JSON object per line whose time is ISO 8601 in UTC."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record)


class WithoutTraceback(logging.Filter):
    """Keep a record's message and drop its traceback: for failures that are not bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def configure(config: dict[str, Any]) -> None:
    """Apply the LOGGING settings and bring every other writer of lines into them."""
    logging.config.dictConfig(config)
    # The formats show no source line, thread or process: not looking them up for every
    # record (the logging HOWTO's "Optimization") spares the access lines of a reconnect
    # storm, three for each of thousands of sockets.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Python's warnings and uncaught exceptions would otherwise go to stderr as plain text.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    _route_daphne_access_log()


def _log_uncaught(kind, value, traceback) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("chat").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("chat").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _route_daphne_access_log() -> None:
    """Make daphne's access lines for stdout log records of `daphne.access`.

    daphne writes one line per request and socket to stdout (its default at verbosity 1)
    in its own format and local time. An access log sent to a file (`--access-log PATH`)
    keeps daphne's format: whoever asked for the file reads it.
    """
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return
    if getattr(AccessLogGenerator.write_entry, "routed_to_logging", False):
        return
    write_to_stream = AccessLogGenerator.write_entry

    def write_entry(
        self, host, date, request, status=None, length=None, ident=None, user=None
    ) -> None:
        if self.stream is not sys.stdout:
            write_to_stream(self, host, date, request, status, length, ident, user)
            return
        if request.startswith("WSCONNECTING "):
            # A socket's outcome has its lines (WSCONNECT or WSREJECT, then WSDISCONNECT);
            # one more for its arrival was 4 % of a reconnect storm's CPU.
            return
        access_log.info(
            '%s "%s" %s %s',
            host,
            request,
            status or "-",
            length or "-",
            extra={"client": host, "request": request, "status": status, "size": length},
        )

    write_entry.routed_to_logging = True
    AccessLogGenerator.write_entry = write_entry
