"""The sockets' reads on a few threads of their own, beside the one database thread.

Each thread has its own database connection. The one thread all of the process's other
socket work shares (database_sync_to_async: handshakes' writes, read pointers, edits,
presence) would otherwise serve the reads one after another: on it 20 heavy users' syncs
waited for each other, and every handshake behind them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from messaging import metrics
from messaging.protocol import ChatError, ErrorCode
from messaging.singletons import per_process

log = logging.getLogger(__name__)


def _make_read_threads() -> ThreadPoolExecutor | None:
    count = settings.CHAT_SOCKET_READ_THREADS
    if count < 1:
        return None
    return ThreadPoolExecutor(max_workers=count, thread_name_prefix="chat-socket-reads")


socket_read_threads = per_process(_make_read_threads)
socket_read_threads.__doc__ = "Return the process's socket read threads (None: there are none)."


def _read_call(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    # As database_sync_to_async: no connection kept past its age, before or after.
    close_old_connections()
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


async def run_on_read_threads(function: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a function that writes nothing on the read threads; return what it returns.

    With no read threads it runs on the database thread. A database error is raised as is.
    """
    threads = socket_read_threads()
    if threads is None:
        return await database_sync_to_async(function)(**kwargs)
    return await sync_to_async(_read_call, thread_sensitive=False, executor=threads)(
        function, kwargs
    )


async def read_on_socket_threads(function: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a selector that writes nothing on the read threads; return its result.

    A database that does not answer is the client's `unavailable` error.
    """
    try:
        return await run_on_read_threads(function, **kwargs)
    except (OperationalError, InterfaceError) as exc:
        metrics.DATABASE_ERRORS.inc()
        log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
        raise ChatError(ErrorCode.UNAVAILABLE, "the database did not answer") from None
