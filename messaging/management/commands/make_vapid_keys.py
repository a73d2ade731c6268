"""Make the VAPID key that signs the chat's Web Pushes."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from messaging.jobs import vapid


class Command(BaseCommand):
    help = (
        "Print a new VAPID key as the line to put in the environment file "
        "(CHAT_VAPID_PRIVATE_KEY=...). Keep it: browsers subscribed with its public half, "
        "and a new key means every browser must subscribe again."
    )

    def handle(self, *args, **options) -> None:
        private = vapid.new_private_key()
        self.stdout.write(f"CHAT_VAPID_PRIVATE_KEY={private}")
        public = vapid.public_key_of(private)
        self.stderr.write(f"public key (GET /api/push/key/ answers it): {public}")
