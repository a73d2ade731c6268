"""Export everything the chat holds about one person, as JSON."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from messaging.models import (
    AuthToken,
    Block,
    Membership,
    Message,
    Report,
    SocketPresence,
    Upload,
)
from messaging.protocol import iso_utc


class Command(BaseCommand):
    help = (
        "Print as JSON everything stored about USERNAME: account, conversations, messages "
        "sent (with the text kept of deleted ones), files sent up, blocks, reports, tokens "
        "(never their secrets) and open sockets. With --output, the files themselves go "
        "into a zip beside it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--output",
            help="write to this file instead of standard output, readable by its owner only "
            "(mode 600), and the person's files to NAME.files.zip beside it; never inside "
            "the checkout",
        )

    def handle(self, *args, username: str, output: str | None, **options) -> None:
        target = _output_path(output) if output else None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        data = export(user)
        if target is None:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
            return
        archive = target.with_suffix(".files.zip")
        try:
            if data["files"]:
                missing = write_files_archive(archive, user)
                for entry in data["files"]:
                    entry["in_archive"] = entry["id"] not in missing
            write_private(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        except OSError as error:
            raise CommandError(
                f"cannot write {error.filename or target}: {error.strerror}"
            ) from error
        written = f"{target} and {archive}" if data["files"] else str(target)
        self.stdout.write(f"Wrote {written} (mode 600)")


def _output_path(output: str) -> Path:
    """Refuse a path inside the checkout: a personal export must not land beside the code.

    There it would be served by nothing, but copied with the checkout, read by everyone who
    can read the code, and one `git add` away from a commit.
    """
    target = Path(output).expanduser().resolve()
    checkout = Path(settings.BASE_DIR).resolve()
    if target == checkout or checkout in target.parents:
        raise CommandError(
            f"refusing to write personal data inside the checkout ({checkout}); "
            "give a path outside it, e.g. --output /root/export.json"
        )
    if target.is_dir():
        raise CommandError(f"{target} is a folder; give a file name")
    return target


def write_private(target: Path, text: str) -> None:
    """Write a file that only its owner can read, whatever the umask and an old file's mode."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    # An existing file keeps its mode on open: narrow it before anything is written.
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def write_files_archive(target: Path, user) -> set[str]:
    """Write the bytes of every file the user sent up into a zip only its owner can read.

    Each is named as the export's `archive_name` says. Return the ids of uploads whose
    bytes the storage no longer has.
    """
    missing = set()
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "wb") as file, zipfile.ZipFile(file, "w") as archive:
        for upload in Upload.objects.filter(owner=user).order_by("created_at", "pk"):
            try:
                source = upload.file.open("rb")
            except FileNotFoundError:
                missing.add(upload.pk)
                continue
            entry = zipfile.ZipInfo(archive_name(upload), upload.created_at.timetuple()[:6])
            # Pictures are compressed already; documents may shrink.
            entry.compress_type = zipfile.ZIP_STORED if upload.inline else zipfile.ZIP_DEFLATED
            with source, archive.open(entry, "w", force_zip64=True) as stored:
                shutil.copyfileobj(source, stored)
    return missing


def archive_name(upload: Upload) -> str:
    """Name an upload's bytes in the export's zip: unique, and readable."""
    return f"{upload.pk}-{upload.name}"


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
        "files": [
            {
                "id": upload.pk,
                "name": upload.name,
                "size": upload.size,
                "content_type": upload.content_type,
                "created_at": iso_utc(upload.created_at),
                "message": upload.message_id,
                "archive_name": archive_name(upload),
            }
            for upload in Upload.objects.filter(owner=user).order_by("created_at", "pk")
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
