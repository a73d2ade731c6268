"""Run background jobs: pushes, missed-message emails, clean-ups."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.jobs.runner import Runner


class Command(BaseCommand):
    help = (
        "Run the chat's background jobs until stopped (SIGTERM or Ctrl+C: the running jobs "
        "finish first). Run as many as you like, on any machine that reaches the database."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.CHAT_WORKER_THREADS,
            help="jobs of plain functions (emails) run at once (default: %(default)s); "
            "pushes run besides, many at once",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="run the due duties and every waiting job, then exit",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=0,
            help="serve this worker's Prometheus metrics on this port (default: none)",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="the address of --metrics-port (default: %(default)s)",
        )

    def handle(self, *args, threads: int, once: bool, metrics_port: int, **options) -> None:
        if threads < 1:
            raise CommandError("--threads must be at least 1")
        if metrics_port:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=options["metrics_address"])
        runner = Runner(threads=threads)
        if once:
            done = runner.run_until_idle(timeout=600, with_duties=True)
            self.stdout.write(f"{done} jobs run")
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.stop())
        self.stdout.write(f"worker {runner.id} running; SIGTERM stops it")
        runner.run()
