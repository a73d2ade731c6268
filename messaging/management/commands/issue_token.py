"""Issue a bearer token for a user, for scripts and wscat."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from messaging.domain.tokens import token_issue


class Command(BaseCommand):
    help = (
        "Print a new bearer token for USERNAME (shown once; only its hash is stored). Use it "
        'as "Authorization: Bearer TOKEN" on the API and the WebSocket.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label to tell tokens apart")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"{username} is deactivated; reactivate them first")
        self.stdout.write(token_issue(user=user, name=name[:100]))
