"""Erase what deleted and hidden messages kept for staff, once the retention has passed."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.domain.message_changes import deleted_messages_purge


class Command(BaseCommand):
    help = (
        "Erase the text and files that deleted and hidden messages kept for staff longer than "
        "CHAT_DELETED_RETENTION_DAYS (with 0, the default, nothing is kept to erase). Safe "
        "while the chat runs: small batches, one transaction each."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        erased = deleted_messages_purge(batch_size=max(1, batch_size))
        days = settings.CHAT_DELETED_RETENTION_DAYS
        self.stdout.write(f"Erased {erased} deleted message(s) kept longer than {days:g} days.")
