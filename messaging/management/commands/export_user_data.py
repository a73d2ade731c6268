"""Export everything the chat holds about one person, as JSON."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from messaging.models import AuthToken, Block, Membership, Message, Report, SocketPresence
from messaging.protocol import iso_utc


class Command(BaseCommand):
    help = (
        "Print as JSON everything stored about USERNAME: account, conversations, messages "
        "sent (with the text kept of deleted ones), blocks, reports, tokens (never their "
        "secrets) and open sockets."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, username: str, output: str | None, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        document = json.dumps(export(user), indent=2, ensure_ascii=False)
        if output:
            with open(output, "w", encoding="utf-8") as file:
                file.write(document + "\n")
            self.stdout.write(f"Wrote {output}")
        else:
            self.stdout.write(document)


def export(user) -> dict:
    """Gather what the chat stores about a user."""
    memberships = Membership.objects.filter(user=user).select_related("conversation")
    return {
        "account": {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "date_joined": iso_utc(user.date_joined),
            "last_login": iso_utc(user.last_login),
            "is_active": user.is_active,
        },
        "conversations": [
            {
                "id": m.conversation_id,
                "kind": m.conversation.kind,
                "title": m.conversation.title,
                "members": sorted(m.conversation.members.values_list("username", flat=True)),
                "joined_at": iso_utc(m.joined_at),
                "last_read_message": m.last_read_message_id,
            }
            for m in memberships
        ],
        "messages_sent": [
            {
                "id": message.pk,
                "conversation": message.conversation_id,
                "kind": message.kind,
                "body": message.body,
                "client_id": message.client_id,
                "created_at": iso_utc(message.created_at),
                "edited_at": iso_utc(message.edited_at),
                "deleted_at": iso_utc(message.deleted_at),
                "hidden_by_staff": message.hidden_by_id is not None,
            }
            for message in Message.objects.filter(sender=user).order_by("pk")
        ],
        "blocks": {
            "made": list(
                Block.objects.filter(blocker=user).values_list("blocked__username", flat=True)
            ),
            "received": list(
                Block.objects.filter(blocked=user).values_list("blocker__username", flat=True)
            ),
        },
        "reports": [
            {
                "id": report.pk,
                "message": report.message_id,
                "made_by_this_user": report.reporter_id == user.pk,
                "reason": report.reason if report.reporter_id == user.pk else None,
                "status": report.status,
                "created_at": iso_utc(report.created_at),
            }
            for report in Report.objects.filter(Q(reporter=user) | Q(message__sender=user))
        ],
        "tokens": [
            {
                "prefix": token.prefix,
                "name": token.name,
                "created_at": iso_utc(token.created_at),
                "last_used_at": iso_utc(token.last_used_at),
            }
            for token in AuthToken.objects.filter(user=user)
        ],
        "open_sockets": [
            {"connected_at": iso_utc(row.connected_at), "process": row.process}
            for row in SocketPresence.objects.filter(user=user)
        ],
    }
