"""Erase messages older than a number of days, in batches, safely while the chat runs."""

from __future__ import annotations

from datetime import timedelta
from itertools import groupby

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from messaging.domain.message_changes import messages_purge
from messaging.domain.uploads import attachments_remove
from messaging.models import Message


class Command(BaseCommand):
    help = (
        "Erase the bodies and files of messages older than --older-than DAYS. Messages "
        "still shown disappear from open clients as deleted; their ids stay. Works in small "
        "batches, one transaction each, so it is safe while the chat runs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=float, required=True, metavar="DAYS")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be erased, erase nothing"
        )

    def handle(self, *args, older_than: float, batch_size: int, dry_run: bool, **options):
        if older_than < 0:
            raise CommandError("--older-than must be zero or more days")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        cutoff = timezone.now() - timedelta(days=older_than)
        # A message keeps what it showed until erased: its text, or its files (a message
        # of files alone has an empty body).
        pending = (
            Message.objects.filter(created_at__lt=cutoff)
            .filter(~Q(body="") | Q(attachments__isnull=False))
            .distinct()
        )
        if dry_run:
            self.stdout.write(
                f"{pending.count()} message(s) older than {cutoff:%Y-%m-%d %H:%M} UTC"
            )
            return
        erased = files = 0
        while True:
            batch = list(pending.order_by("pk").values_list("conversation_id", "pk")[:batch_size])
            if not batch:
                break
            for conversation_id, rows in groupby(sorted(batch), key=lambda row: row[0]):
                ids = [pk for _, pk in rows]
                erased += messages_purge(conversation_id=conversation_id, message_ids=ids)
                files += attachments_remove(ids)
        self.stdout.write(
            f"Erased {erased} message(s) and {files} file(s) older than "
            f"{cutoff:%Y-%m-%d %H:%M} UTC."
        )
