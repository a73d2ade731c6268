"""Make a restored database safe to serve clients that saw the lost, newer data."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messaging.models import ChangeStream, Message, PresenceProcess, SocketPresence

# Added to every stamp and id whatever the time since the dump: covers clock skew and a
# burst right before the dump was taken.
DEFAULT_MARGIN = 1_000_000
# Changes (and rows) per second the site can possibly have made between the dump and the
# failure; far above what one PostgreSQL primary stores (docs/performance.md).
DEFAULT_RATE = 10_000


class Command(BaseCommand):
    help = (
        "Run once after restoring a backup, before starting the chat. Moves every change "
        "stamp (seq) and every id sequence past anything a client can have seen before the "
        "restore (by --margin plus --rate per second since the dump), so that clients "
        "holding newer, now lost, stamps and ids still sync every new message; clears the "
        "presence rows of the processes that ran when the dump was taken."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dumped-at",
            metavar="ISO-8601",
            help="when the dump was taken (or the recovery target time); by default the "
            "newest time found in the restored data, which is no later than the dump",
        )
        parser.add_argument("--margin", type=int, default=DEFAULT_MARGIN, metavar="N")
        parser.add_argument("--rate", type=int, default=DEFAULT_RATE, metavar="PER_SECOND")

    def handle(self, *args, dumped_at: str | None, margin: int, rate: int, **options) -> None:
        if margin < 1 or rate < 0:
            raise CommandError("--margin must be at least 1 and --rate at least 0")
        taken = _parse_time(dumped_at) if dumped_at else newest_time()
        seconds = max(0.0, (timezone.now() - taken).total_seconds()) if taken else 0.0
        step = margin + int(rate * seconds)
        with transaction.atomic():
            floor, before = streams_raise(step)
            moved = sequences_raise(step)
            sockets, processes = presence_clear()
        since = f"{taken:%Y-%m-%d %H:%M:%S} UTC" if taken else "no time found"
        self.stdout.write(
            f"Dump taken at or after: {since}; step {step} "
            f"(margin {margin} + {rate}/s x {seconds:.0f} s)."
        )
        self.stdout.write(f"Change stamps: every user's stream at {floor} (newest was {before}).")
        self.stdout.write(f"Id sequences moved forward: {moved}.")
        self.stdout.write(f"Presence cleared: {sockets} socket(s), {processes} process(es).")


def _parse_time(text: str) -> datetime:
    value = parse_datetime(text)
    if value is None:
        raise CommandError(f"--dumped-at {text!r} is not an ISO 8601 time")
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def newest_time() -> datetime | None:
    """Return the newest time the restored data records (the dump is no older)."""
    found = [
        *Message.objects.aggregate(
            Max("created_at"), Max("edited_at"), Max("deleted_at")
        ).values(),
        PresenceProcess.objects.aggregate(Max("heartbeat_at"))["heartbeat_at__max"],
        SocketPresence.objects.aggregate(Max("connected_at"))["connected_at__max"],
        get_user_model().objects.aggregate(Max("last_login"))["last_login__max"],
        get_user_model().objects.aggregate(Max("date_joined"))["date_joined__max"],
    ]
    return max((time for time in found if time is not None), default=None)


def streams_raise(step: int) -> tuple[int, int]:
    """Give every user a change stream at the newest stamp plus step; return it and the newest.

    A new change is stamped one above the largest last stamp of its members, so with
    every stream at the floor, every change from now on is above any stamp a client saw.
    """
    newest = max(
        Message.objects.aggregate(Max("seq"))["seq__max"] or 0,
        ChangeStream.objects.aggregate(Max("last_seq"))["last_seq__max"] or 0,
    )
    floor = newest + step
    missing = get_user_model().objects.filter(change_stream__isnull=True)
    ChangeStream.objects.bulk_create(
        [ChangeStream(user_id=pk) for pk in missing.values_list("pk", flat=True)],
        batch_size=1000,
    )
    # No change holds the floor: each stream names its conversation again at its next change.
    ChangeStream.objects.update(last_seq=floor, last_conversation_id=None)
    return floor, newest


def sequences_raise(step: int) -> int:
    """Move every table's id sequence step past its largest id and its last value."""
    quote = connection.ops.quote_name
    moved = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in connection.introspection.table_names(cursor):
                for sequence in connection.introspection.get_sequences(cursor, table):
                    cursor.execute(
                        f"SELECT setval(%s, GREATEST("
                        f"(SELECT COALESCE(MAX({quote(sequence['column'])}), 0) "
                        f"FROM {quote(table)}), "
                        f"(SELECT last_value FROM {quote(sequence['name'])})) + %s)",
                        [quote(sequence["name"]), step],
                    )
                    moved += 1
        elif connection.vendor == "sqlite":
            # Django's SQLite tables are AUTOINCREMENT: sqlite_sequence holds the next id.
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'")
            if cursor.fetchone():
                cursor.execute("SELECT name FROM sqlite_sequence")
                for (table,) in cursor.fetchall():
                    cursor.execute(f"SELECT MAX(rowid) FROM {quote(table)}")
                    largest = cursor.fetchone()[0] or 0
                    cursor.execute(
                        "UPDATE sqlite_sequence SET seq = MAX(seq, %s) + %s WHERE name = %s",
                        [largest, step, table],
                    )
                    moved += 1
        else:
            raise CommandError(f"no id sequences known on {connection.vendor}")
    return moved


def presence_clear() -> tuple[int, int]:
    """Forget the sockets and processes of the dump: none of them is open now."""
    sockets, _ = SocketPresence.objects.all().delete()
    processes, _ = PresenceProcess.objects.all().delete()
    return sockets, processes
