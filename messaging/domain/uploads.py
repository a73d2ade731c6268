"""Uploaded files: taken in, attached to the message that carries them, shown, removed.

An upload belongs to its owner alone until a message carries it (`attachable`, `attach`);
from then on the members of that message's conversation may download it while the message
is neither deleted nor hidden (`downloadable`). Uploads no message carried are removed after
CHAT_UNSENT_UPLOAD_TTL (`unsent_uploads_purge`). The bytes live in the storage under random
names; rows are removed first and the bytes after the commit (`remove_files`), so that a
row never names bytes that are gone.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import partial
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Case, Q, Sum, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from messaging.domain.pictures import PictureRefused, picture_from
from messaging.domain.ratelimit import check_rate_sync
from messaging.models import Upload
from messaging.protocol import ChatError, ErrorCode
from messaging.sql_values import is_one_of

log = logging.getLogger(__name__)

NAME_MAX = 200
# A file name's extension kept whole when a long name is shortened ("….tar.gz" is two).
_EXTENSION_MAX = 16
_FALLBACK_NAME = "file"

# Files that are not pictures are downloads. These few formats are named for what they
# are, so a client can show a fitting icon; everything else is application/octet-stream.
_SIGNATURES = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"PK\x03\x04", "application/zip", ".zip"),
)
_DOWNLOAD = ("application/octet-stream", ".bin")


class UploadRefused(Exception):
    """A file the chat does not take: `detail` says why, `status` is the HTTP answer."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def clean_name(raw: str) -> str:
    """Return the name to show for a file: no folders, no control characters, not empty.

    A name is only ever shown and offered as the download's name; the stored file has a
    random one. Format characters (right-to-left overrides that make "gpj.exe" read as
    "exe.jpg") go with the control characters.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if _category(ch) == "Zs" else ch for ch in name if _shown(ch)).strip()
    if not name.strip("."):
        return _FALLBACK_NAME
    if len(name) > NAME_MAX:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) < _EXTENSION_MAX:
            name = stem[: NAME_MAX - len(extension) - 1].rstrip() + "." + extension
        else:
            name = name[:NAME_MAX].rstrip()
    return name


def _category(ch: str) -> str:
    return unicodedata.category(ch)


def _shown(ch: str) -> bool:
    # Control, format, surrogate, private and unassigned characters, and line breaks.
    return _category(ch)[0] != "C" and _category(ch) not in ("Zl", "Zp")


def store_upload(owner, uploaded_file: File) -> Upload:
    """Take in a file a user sends up, unsent until a message carries it.

    Pictures (JPEG, PNG, GIF's first frame, WebP) are decoded, turned upright, stripped of
    EXIF and every other metadata, encoded again and given a thumbnail; they alone are
    `inline`. Anything else is stored as it came, as a download. The content type comes
    from the bytes, never from the name or the client's header.

    Raise UploadRefused (400 empty, damaged picture; 413 too large or too many pixels;
    403 over the owner's quota) or ChatError `rate_limited`. Nothing is stored then.
    """
    size = uploaded_file.size or 0
    if size == 0:
        raise UploadRefused(_("the file is empty"))
    if size > settings.CHAT_MAX_UPLOAD_BYTES:
        raise UploadRefused(too_large_detail(), 413)
    check_rate_sync("upload", owner.pk, settings.CHAT_UPLOAD_RATE)
    _check_quota(owner.pk, size)
    try:
        picture = picture_from(uploaded_file, max_pixels=settings.CHAT_UPLOAD_MAX_PIXELS)
    except PictureRefused as refused:
        raise UploadRefused(refused.detail, 413 if refused.too_large else 400) from None
    base = _storage_base()
    if picture is not None:
        stored = [
            default_storage.save(base + picture.extension, ContentFile(picture.data)),
            default_storage.save(base + ".thumb.webp", ContentFile(picture.thumbnail)),
        ]
        fields = {
            "size": len(picture.data),
            "content_type": picture.content_type,
            "width": picture.width,
            "height": picture.height,
            "inline": True,
        }
    else:
        content_type, extension = _sniffed_type(uploaded_file)
        uploaded_file.seek(0)
        stored = [default_storage.save(base + extension, uploaded_file)]
        fields = {"size": size, "content_type": content_type}
    try:
        return _insert(
            owner.pk,
            file=stored[0],
            thumbnail=stored[1] if len(stored) > 1 else "",
            name=clean_name(uploaded_file.name or ""),
            **fields,
        )
    except Exception:
        for name in stored:
            _delete_bytes(name)
        raise


def too_large_detail() -> str:
    """Say that a file passes CHAT_MAX_UPLOAD_BYTES, in the active language."""
    return _("the file is larger than %(limit)s MB") % {
        "limit": _megabytes(settings.CHAT_MAX_UPLOAD_BYTES)
    }


def _megabytes(size: int, decimals: int | None = None) -> str:
    """Megabytes as the active language writes them: all the digits a limit has (25,
    2.5, 0.001) unless `decimals` is given."""
    megabytes = size / 1_000_000
    if decimals is None:
        shortest = f"{megabytes:f}".rstrip("0")
        decimals = len(shortest.split(".")[1])
    return number_format(megabytes, decimal_pos=decimals)


def _storage_base() -> str:
    # Random, and never the client's name: nothing the sender chose reaches the disk.
    return f"uploads/{timezone.now():%Y/%m}/{secrets.token_urlsafe(18)}"


def _sniffed_type(file: IO[bytes]) -> tuple[str, str]:
    file.seek(0)
    head = file.read(8)
    for signature, content_type, extension in _SIGNATURES:
        if head.startswith(signature):
            return content_type, extension
    return _DOWNLOAD


def quota_used(owner_id: int) -> int:
    """Return how many bytes of files a user has stored, sent or not."""
    return Upload.objects.filter(owner_id=owner_id).aggregate(total=Sum("size"))["total"] or 0


def _check_quota(owner_id: int, size: int) -> None:
    used = quota_used(owner_id)
    quota = settings.CHAT_UPLOAD_QUOTA_BYTES
    if used + size > quota:
        raise UploadRefused(
            _("your files already take %(used)s MB of your %(quota)s MB; this one does not fit")
            % {"used": _megabytes(used, 1), "quota": _megabytes(quota)},
            403,
        )


def _insert(owner_id: int, **fields: Any) -> Upload:
    """Insert the row, checking the quota again behind a lock on the owner."""
    with transaction.atomic():
        # Two uploads of one person at once would both fit a quota that holds only one.
        list(get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk"))
        _check_quota(owner_id, fields["size"])
        return Upload.objects.create(owner_id=owner_id, **fields)


def attachable(
    owner_id: int, upload_ids: Sequence[str], lock: bool = False
) -> list[Upload] | None:
    """Return the uploads a send may carry, in the order named; None if any may not be.

    Each must be the owner's own and not sent yet, each named once, at most
    CHAT_MAX_ATTACHMENTS. With `lock` (inside the send's transaction) the rows stay locked
    until it ends, so that two sends cannot both carry one file.
    """
    ids = list(upload_ids)
    if not ids:
        return []
    if len(ids) > settings.CHAT_MAX_ATTACHMENTS or len(set(ids)) != len(ids):
        return None
    rows = Upload.objects.filter(pk__in=ids, owner_id=owner_id, message__isnull=True)
    if lock:
        rows = rows.select_for_update()
    found = {upload.pk: upload for upload in rows}
    if len(found) != len(ids):
        return None
    return [found[upload_id] for upload_id in ids]


def attach(uploads: Sequence[Upload], message_id: int) -> None:
    """Make the uploads (from `attachable`) the message's files, in their order: one UPDATE.

    Raise ChatError `not_found` when one was sent meanwhile (inside the send's transaction,
    which then stores nothing).
    """
    if not uploads:
        return
    ids = [upload.pk for upload in uploads]
    position = Case(*(When(pk=pk, then=Value(n)) for n, pk in enumerate(ids)))
    changed = Upload.objects.filter(pk__in=ids, message__isnull=True).update(
        message_id=message_id, position=position
    )
    if changed != len(ids):
        raise ChatError(ErrorCode.NOT_FOUND, "no such upload (or it was sent already)")
    for n, upload in enumerate(uploads):
        upload.message_id = message_id
        upload.position = n


def attachment_data(upload: Upload) -> dict[str, Any]:
    """Show an upload as the protocol's attachment object."""
    return {
        "id": upload.pk,
        "name": upload.name,
        "size": upload.size,
        "content_type": upload.content_type,
        "url": reverse("upload-file", args=[upload.pk]),
        "width": upload.width,
        "height": upload.height,
        "thumbnail_url": (
            reverse("upload-thumbnail", args=[upload.pk]) if upload.thumbnail else None
        ),
    }


def attachments_of(message_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Return each message's attachment objects, in order; one query for a whole page."""
    ids = list(message_ids)
    if not ids:
        return {}
    by_message: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = Upload.objects.filter(is_one_of(Upload, "message_id", ids))
    rows = rows.order_by("message_id", "position")
    for upload in rows.only(
        "id", "message_id", "name", "size", "content_type", "width", "height", "thumbnail"
    ):
        by_message[upload.message_id].append(attachment_data(upload))
    return dict(by_message)


def downloadable(*, user_id: int, upload_id: str) -> Upload | None:
    """Return the upload if the user may download it now, else None.

    Its owner may while it is unsent; once sent, the members of its conversation may while
    the message is neither deleted nor hidden. Everyone else is told nothing.
    """
    return (
        Upload.objects.filter(pk=upload_id)
        .filter(
            Q(message__isnull=True, owner_id=user_id)
            | Q(
                message__deleted_at__isnull=True,
                message__conversation__memberships__user_id=user_id,
            )
        )
        .first()
    )


def remove_files(uploads: Iterable[Upload]) -> None:
    """Delete the uploads' bytes (file and thumbnail) from the storage; rows are the caller's.

    Call it once the rows are gone for good (after the commit): a failure leaves unused
    bytes behind, logged, never a row naming bytes that are gone.
    """
    for upload in uploads:
        for name in (upload.file.name, upload.thumbnail.name):
            if name:
                _delete_bytes(name)


def _delete_bytes(name: str) -> None:
    try:
        default_storage.delete(name)
    except Exception:
        # Any storage's failure (a disk, S3 over the network): the rest must still go.
        log.warning("could not delete the stored file %s", name, exc_info=True)


def attachments_remove(message_ids: Iterable[int]) -> int:
    """Remove the files of these messages, rows now and bytes after the commit; count them."""
    ids = list(message_ids)
    if not ids:
        return 0
    with transaction.atomic():
        doomed = list(Upload.objects.select_for_update().filter(message_id__in=ids))
        Upload.objects.filter(pk__in=[upload.pk for upload in doomed]).delete()
        transaction.on_commit(partial(remove_files, doomed))
    return len(doomed)


def unsent_uploads_purge(*, older_than: timedelta | None = None, batch_size: int = 500) -> int:
    """Remove uploads that no message carried within `older_than`; count them.

    `older_than` defaults to CHAT_UNSENT_UPLOAD_TTL. Works in batches, one transaction each;
    a send carrying one of them at the same moment either wins (it is kept) or finds it gone.
    """
    if older_than is None:
        older_than = timedelta(seconds=settings.CHAT_UNSENT_UPLOAD_TTL)
    cutoff = timezone.now() - older_than
    removed = 0
    while True:
        with transaction.atomic():
            batch = list(
                Upload.objects.select_for_update()
                .filter(message__isnull=True, created_at__lt=cutoff)
                .order_by("created_at")[:batch_size]
            )
            if not batch:
                return removed
            Upload.objects.filter(pk__in=[upload.pk for upload in batch]).delete()
            transaction.on_commit(partial(remove_files, batch))
        removed += len(batch)
