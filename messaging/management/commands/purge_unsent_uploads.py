"""Remove uploads that no message carried: sent up, then never sent."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.domain.uploads import unsent_uploads_purge


class Command(BaseCommand):
    help = (
        "Remove uploads that no message carries, older than --older-than SECONDS "
        "(CHAT_UNSENT_UPLOAD_TTL, a day, by default): their rows, then their bytes. "
        "Works in small batches, safe while the chat runs; run it hourly."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=float, default=None, metavar="SECONDS")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, older_than: float | None, batch_size: int, **options) -> None:
        if older_than is None:
            older_than = settings.CHAT_UNSENT_UPLOAD_TTL
        if older_than < 0:
            raise CommandError("--older-than must be zero or more seconds")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        removed = unsent_uploads_purge(
            older_than=timedelta(seconds=older_than), batch_size=batch_size
        )
        self.stdout.write(f"Removed {removed} unsent upload(s) older than {older_than:g} s.")
