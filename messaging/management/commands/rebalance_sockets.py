"""Ask some clients of the busiest processes to reconnect, so nginx spreads them again."""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from messaging.ops import rebalance


class Command(BaseCommand):
    help = (
        "After a rolling restart, ask the clients of the processes holding more than their "
        "part of the open sockets to reconnect (close code 1013; clients reconnect and "
        "sync), a few at a time over --over seconds, so that nginx places them on the "
        "emptier processes. It first watches the heartbeats for one interval, to count only "
        "processes that run. Run it from any machine of the chat."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--processes",
            type=int,
            default=0,
            metavar="N",
            help="how many daphne processes serve (on every machine); a process that holds "
            "no socket is not counted, so give it after a rolling restart "
            "(default: the processes that hold sockets)",
        )
        parser.add_argument(
            "--share",
            type=float,
            default=None,
            metavar="FRACTION",
            help="ask this share of the sockets of each process holding more than its part "
            "(default: just its sockets beyond its part)",
        )
        parser.add_argument(
            "--over",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="spread the requests over this many seconds (default: 60)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be asked, ask nothing"
        )

    def handle(
        self,
        *args,
        processes: int,
        share: float | None,
        over: float,
        dry_run: bool,
        **options,
    ) -> None:
        if processes < 0:
            raise CommandError("--processes must be 1 or more")
        if share is not None and not 0 < share <= 1:
            raise CommandError("--share must be more than 0 and at most 1, e.g. 0.5")
        if over < 0:
            raise CommandError("--over must be zero or more seconds")
        backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]
        if not dry_run and backend.endswith("InMemoryChannelLayer"):
            raise CommandError(
                "the processes are reached through the channel layer: set REDIS_URL as the "
                "daphne processes have it (without Redis the chat is one process, with "
                "nothing to spread)"
            )

        started = timezone.now()
        wait = rebalance.heartbeat_wait()
        self.stdout.write(f"watching the processes' heartbeats for {wait:g} s")
        time.sleep(wait)
        live = rebalance.beating_processes(since=started)
        serving = max(processes, len(live))
        chosen = rebalance.sockets_to_move(live, serving=serving, share=share)
        total = sum(len(p.channels) for p in live)
        self.stdout.write(f"{total} open socket(s) on {len(live)} process(es), {serving} serving")
        for p in live:
            asked = len(chosen.get(p.process, []))
            self.stdout.write(
                f"  process {p.process[:8]}: {len(p.channels)} socket(s), {asked} to reconnect"
            )
        if len(live) < serving:
            self.stdout.write(f"  {serving - len(live)} process(es) with no socket")
        order = rebalance.interleaved(chosen)
        if dry_run or not order:
            self.stdout.write(f"{len(order)} socket(s) would be asked to reconnect")
            return
        failures = async_to_sync(rebalance.ask_to_reconnect)(order, over=over)
        self.stdout.write(
            f"asked {len(order) - failures} socket(s) to reconnect over {over:g} s"
            + (f"; {failures} could not be asked (see the log)" if failures else "")
        )
