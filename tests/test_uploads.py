"""Photos and files: sent up, cleaned, attached, downloaded by members only, and removed."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from PIL import Image

from messaging.domain import message_changes, moderation, services
from messaging.domain.tokens import token_issue
from messaging.domain.uploads import (
    attach,
    attachable,
    attachment_data,
    attachments_of,
    clean_name,
    store_upload,
)
from messaging.models import Report, Upload
from messaging.protocol import ChatError
from messaging.web.uploads import MULTIPART_SLACK
from tests.live import ROOT

pytestmark = pytest.mark.django_db

ATTACHMENT_FIELDS = {
    "id",
    "name",
    "size",
    "content_type",
    "url",
    "width",
    "height",
    "thumbnail_url",
}
GPS_TAG = 0x8825
ORIENTATION_TAG = 0x0112


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    """Keep each test's files in a folder of its own, outside the checkout."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def stored_files(media: Path) -> list[Path]:
    return sorted(path for path in media.rglob("*") if path.is_file())


def bearer(user) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=user)}"}


def jpeg(size=(40, 20), *, orientation: int | None = None, gps: bool = False) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION_TAG] = orientation
    if gps:
        exif[GPS_TAG] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, "JPEG", exif=exif, comment=b"made at home")
    return out.getvalue()


def png(size=(30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 255, 128)).save(out, "PNG")
    return out.getvalue()


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A well-formed one-colour palette PNG of that many pixels, small on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte, then 1 bit per pixel
    packer = zlib.compressobj(9)
    compressed = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", b"\xff\x00\x00")
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )


def post_file(client: Client, content: bytes, name: str = "photo.jpg", **extra):
    return client.post("/api/uploads/", {"file": SimpleUploadedFile(name, content)}, **extra)


def post_raw_multipart(client: Client, filename: str, content: bytes, **extra):
    """POST a multipart body written by hand, with the file name exactly as given."""
    boundary = "----chat-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        "/api/uploads/", body, content_type=f"multipart/form-data; boundary={boundary}", **extra
    )


def upload_of(user, content: bytes, name: str = "photo.jpg") -> Upload:
    return store_upload(user, SimpleUploadedFile(name, content))


def message_between(sender, to, body: str = "look", n=[0]):  # noqa: B006 - a shared counter
    n[0] += 1
    return services.message_send(sender=sender, body=body, client_id=f"u{n[0]}", to=to).message


def sent_file(sender, to, content: bytes | None = None, name: str = "photo.jpg") -> Upload:
    upload = upload_of(sender, content or jpeg(), name)
    attach([upload], message_between(sender, to).pk)
    return upload


# --- Sending a file up -------------------------------------------------------------------


def test_a_photo_comes_back_upright_with_a_thumbnail_and_without_its_gps(client, alice, media):
    photo = jpeg((40, 20), orientation=6, gps=True)
    response = post_file(client, photo, "holiday.jpg", **bearer(alice))
    assert response.status_code == 201, response.content
    upload = response.json()["upload"]
    assert set(upload) == ATTACHMENT_FIELDS
    # Orientation 6 is "turn right": the stored picture is upright, so taller than wide.
    assert (upload["name"], upload["content_type"]) == ("holiday.jpg", "image/jpeg")
    assert (upload["width"], upload["height"]) == (20, 40)
    assert upload["thumbnail_url"]

    download = client.get(upload["url"], **bearer(alice))
    assert download.status_code == 200
    assert download["Content-Type"] == "image/jpeg"
    assert download["Content-Disposition"].startswith("inline;")
    assert download["X-Content-Type-Options"] == "nosniff"
    served = b"".join(download.streaming_content)
    assert upload["size"] == len(served)
    picture = Image.open(io.BytesIO(served))
    assert picture.size == (20, 40)
    assert GPS_TAG not in picture.getexif() and ORIENTATION_TAG not in picture.getexif()
    assert b"made at home" not in served

    thumbnail = client.get(upload["thumbnail_url"], **bearer(alice))
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(b"".join(thumbnail.streaming_content))).size == (20, 40)
    # The bytes are stored under random names, never the sender's.
    assert all("holiday" not in path.name for path in stored_files(media))


def test_a_large_picture_gets_a_small_thumbnail(alice):
    upload = upload_of(alice, png((1600, 900)), "screen.png")
    assert (upload.width, upload.height, upload.content_type) == (1600, 900, "image/png")
    with upload.thumbnail.open("rb") as thumbnail:
        assert Image.open(thumbnail).size == (400, 225)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        ),
        ("page.html", b"<!doctype html><script>alert(document.cookie)</script>"),
        # A file named as a picture is not one for that.
        ("fake.jpg", b"<html><body onload=alert(1)></body></html>"),
    ],
)
def test_svg_and_html_are_downloads_never_shown_inline(client, alice, name, content):
    response = post_file(client, content, name, **bearer(alice))
    assert response.status_code == 201
    upload = response.json()["upload"]
    assert upload["content_type"] == "application/octet-stream"
    assert (upload["width"], upload["height"], upload["thumbnail_url"]) == (None, None, None)
    download = client.get(upload["url"], **bearer(alice))
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"".join(download.streaming_content) == content


def test_a_pdf_is_named_for_what_it_is_and_still_downloaded(client, alice):
    response = post_file(
        client, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "notes.txt", **bearer(alice)
    )
    upload = response.json()["upload"]
    assert upload["content_type"] == "application/pdf"
    download = client.get(upload["url"], **bearer(alice))
    assert download["Content-Disposition"] == (
        "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
    )


@pytest.mark.parametrize(
    ("sent_as", "shown_as"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\alice\\report.pdf", "report.pdf"),
        ("bell\x07and\x1bescape.txt", "bellandescape.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ],
)
def test_a_name_with_folders_or_control_characters_is_stored_cleaned(
    client, alice, media, sent_as, shown_as
):
    response = post_raw_multipart(client, sent_as, b"some bytes", **bearer(alice))
    assert response.status_code == 201, response.content
    assert response.json()["upload"]["name"] == shown_as
    (stored,) = stored_files(media)
    assert stored.is_relative_to(media / "uploads") and shown_as not in stored.name


def test_names_are_cleaned_whatever_calls_the_domain():
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("..") == clean_name("") == clean_name("\x00\x01") == "file"
    assert clean_name("a\u2028b\u00a0c.txt") == "ab c.txt"
    long = clean_name("x" * 300 + ".jpeg")
    assert len(long) == 200 and long.endswith("x.jpeg")


def test_a_picture_downloaded_keeps_a_unicode_name(client, alice):
    upload = post_file(client, png(), "café ☕.png", **bearer(alice)).json()["upload"]
    download = client.get(upload["url"], **bearer(alice))
    assert download["Content-Disposition"] == (
        "inline; filename=\"cafe .png\"; filename*=UTF-8''caf%C3%A9%20%E2%98%95.png"
    )


# --- Refusals: a clear 4xx, nothing stored --------------------------------------------------


def assert_nothing_stored(media: Path) -> None:
    assert Upload.objects.count() == 0
    assert stored_files(media) == []


class Unreadable:
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def test_a_body_announced_over_the_limit_is_413_before_it_is_read(client, alice, media, settings):
    too_long = settings.CHAT_MAX_UPLOAD_BYTES + MULTIPART_SLACK + 1
    response = client.generic(
        "POST",
        "/api/uploads/",
        CONTENT_TYPE="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(too_long),
        **{"wsgi.input": Unreadable()},
        **bearer(alice),
    )
    assert response.status_code == 413
    assert "larger than 25 MB" in response.json()["detail"]
    assert_nothing_stored(media)


def test_a_file_over_the_limit_is_413_even_when_the_length_does_not_say_so(
    client, alice, media, settings
):
    settings.CHAT_MAX_UPLOAD_BYTES = 1000
    response = post_file(client, b"x" * 1001, "big.bin", **bearer(alice))
    assert response.status_code == 413
    assert response.json()["detail"] == "the file is larger than 0.001 MB"
    assert_nothing_stored(media)
    assert post_file(client, b"x" * 1000, "fits.bin", **bearer(alice)).status_code == 201


def test_an_empty_file_is_400(client, alice, media):
    response = post_file(client, b"", "empty.txt", **bearer(alice))
    assert response.status_code == 400
    assert response.json()["detail"] == "the file is empty"
    assert_nothing_stored(media)


def test_a_refused_upload_says_why_in_the_persons_language(client, alice, media, settings):
    settings.CHAT_UPLOAD_QUOTA_BYTES = 2_500_000
    german = {"HTTP_ACCEPT_LANGUAGE": "de", **bearer(alice)}
    empty = post_file(client, b"", "leer.txt", **german).json()
    assert empty["detail"] == "die Datei ist leer"
    assert empty["errors"] == {"file": ["die Datei ist leer"]}
    assert post_file(client, b"x" * 2_000_000, "gross.bin", **german).status_code == 201
    over = post_file(client, b"x" * 600_000, "mehr.bin", **german)
    assert over.status_code == 403
    # Numbers as German writes them: a decimal comma.
    assert over.json()["detail"] == (
        "deine Dateien belegen schon 2,0 MB deiner 2,5 MB; diese passt nicht mehr hinein"
    )
    spanish = post_file(client, b"", "vacio.txt", HTTP_ACCEPT_LANGUAGE="es", **bearer(alice))
    assert spanish.json()["detail"] == "el archivo está vacío"


@pytest.mark.parametrize(
    "data",
    [{}, {"other": SimpleUploadedFile("a.txt", b"a")}, {"file": "not a file"}],
    ids=["nothing", "another field", "text"],
)
def test_no_file_is_400(client, alice, media, data):
    response = client.post("/api/uploads/", data, **bearer(alice))
    assert response.status_code == 400
    assert "field 'file'" in response.json()["detail"]
    assert_nothing_stored(media)


def test_a_json_body_is_400(client, alice, media):
    response = client.post("/api/uploads/", {"file": "x"}, "application/json", **bearer(alice))
    assert response.status_code == 400
    assert_nothing_stored(media)


def test_a_truncated_picture_is_400(client, alice, media):
    photo = jpeg((200, 200))
    response = post_file(client, photo[: len(photo) // 2], "cut.jpg", **bearer(alice))
    assert response.status_code == 400
    assert "damaged or incomplete" in response.json()["detail"]
    assert_nothing_stored(media)


def test_a_corrupt_picture_is_400(client, alice, media):
    corrupt = b"\x89PNG\r\n\x1a\n" + os.urandom(300)
    response = post_file(client, corrupt, "noise.png", **bearer(alice))
    assert response.status_code == 400
    assert "damaged" in response.json()["detail"]
    assert_nothing_stored(media)


def test_a_20000_by_20000_png_is_refused_before_it_is_decoded(client, alice, media):
    bomb = huge_png()
    assert len(bomb) < 100_000
    response = post_file(client, bomb, "bomb.png", **bearer(alice))
    assert response.status_code == 413
    assert "too many pixels" in response.json()["detail"]
    assert_nothing_stored(media)


def test_a_picture_over_the_pixel_setting_says_its_size(client, alice, media, settings):
    settings.CHAT_UPLOAD_MAX_PIXELS = 1000
    response = post_file(client, png((50, 50)), "square.png", **bearer(alice))
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the picture is 50 by 50 pixels; at most 1,000 pixels in all"
    )
    assert_nothing_stored(media)


def test_uploads_past_the_quota_are_refused(client, alice, bob, media, settings):
    settings.CHAT_UPLOAD_QUOTA_BYTES = 1500
    assert post_file(client, b"a" * 1000, "one.bin", **bearer(alice)).status_code == 201
    refused = post_file(client, b"b" * 1000, "two.bin", **bearer(alice))
    assert refused.status_code == 403
    assert "1.0 MB" not in refused.json()["detail"] and "does not fit" in refused.json()["detail"]
    assert Upload.objects.count() == 1 and len(stored_files(media)) == 1
    # Another person's quota is their own.
    assert post_file(client, b"c" * 1000, "three.bin", **bearer(bob)).status_code == 201


def test_uploads_past_the_rate_are_429_with_retry_after(client, alice, media, settings):
    settings.CHAT_UPLOAD_RATE = "2/60s"
    for n in range(2):
        assert post_file(client, b"x", f"{n}.bin", **bearer(alice)).status_code == 201
    refused = post_file(client, b"x", "third.bin", **bearer(alice))
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1 and refused.json()["code"] == "rate_limited"
    assert Upload.objects.count() == 2


def test_an_upload_needs_a_login(client, media):
    assert post_file(client, b"x", "a.bin").status_code == 401
    assert_nothing_stored(media)


def test_an_upload_with_the_session_needs_the_csrf_token(alice, media):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert post_file(browser, b"x", "a.bin").status_code == 403
    assert_nothing_stored(media)
    browser.get("/settings/")  # sets the CSRF cookie, as the chat page does
    token = browser.cookies["csrftoken"].value
    response = post_file(browser, png(), "a.png", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201
    assert browser.get(response.json()["upload"]["url"]).status_code == 200


# --- Who may download ------------------------------------------------------------------------


def test_an_unsent_upload_is_its_owners_alone(client, alice, bob):
    upload = attachment_data(upload_of(alice, png()))
    assert client.get(upload["url"], **bearer(alice)).status_code == 200
    assert client.get(upload["url"], **bearer(bob)).status_code == 404
    assert client.get(upload["thumbnail_url"], **bearer(bob)).status_code == 404
    assert client.get(upload["url"]).status_code == 404


def test_a_sent_file_is_the_conversations_and_no_one_elses(client, alice, bob, carol):
    data = attachment_data(sent_file(alice, "bob"))
    for member in (alice, bob):
        assert client.get(data["url"], **bearer(member)).status_code == 200
        assert client.get(data["thumbnail_url"], **bearer(member)).status_code == 200
    assert client.get(data["url"], **bearer(carol)).status_code == 404
    assert client.get(data["thumbnail_url"], **bearer(carol)).status_code == 404
    browser = Client()
    browser.force_login(bob)
    response = browser.get(data["url"])
    assert response.status_code == 200 and "private" in response["Cache-Control"]
    assert client.get("/files/no-such-file/", **bearer(bob)).status_code == 404


def test_a_deleted_messages_file_is_404_to_everyone(client, alice, bob):
    upload = sent_file(alice, "bob")
    message_changes.message_delete(actor=alice, message_id=upload.message_id)
    data = attachment_data(upload)
    for member in (alice, bob):
        assert client.get(data["url"], **bearer(member)).status_code == 404
        assert client.get(data["thumbnail_url"], **bearer(member)).status_code == 404


def test_a_hidden_messages_file_is_404_until_staff_restore_it(
    client, alice, bob, make_user, settings
):
    settings.CHAT_DELETED_RETENTION_DAYS = 30  # staff keep hidden messages to restore them
    staff = make_user(username="moderator", is_staff=True, is_superuser=True)
    upload = sent_file(alice, "bob")
    url = attachment_data(upload)["url"]
    moderation.staff_hide_message(staff=staff, message_id=upload.message_id)
    assert client.get(url, **bearer(bob)).status_code == 404
    moderation.staff_restore_message(staff=staff, message_id=upload.message_id)
    assert client.get(url, **bearer(bob)).status_code == 200


def test_downloads_past_the_rate_are_429(client, alice, settings):
    settings.CHAT_DOWNLOAD_RATE = "2/60s"
    url = attachment_data(upload_of(alice, png()))["url"]
    assert [client.get(url, **bearer(alice)).status_code for _ in range(3)] == [200, 200, 429]


def test_behind_nginx_the_bytes_are_left_to_x_accel_redirect(client, alice, settings):
    settings.CHAT_UPLOADS_X_ACCEL = "/internal-media/"
    upload = upload_of(alice, b"plain bytes", "notes.txt")
    response = client.get(attachment_data(upload)["url"], **bearer(alice))
    assert response.status_code == 200 and response.content == b""
    assert response["X-Accel-Redirect"] == f"/internal-media/{upload.file.name}"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


# --- What the send path calls ----------------------------------------------------------------


def test_attachable_takes_the_owners_unsent_uploads_in_the_order_named(alice, bob):
    first, second = upload_of(alice, b"1", "1.bin"), upload_of(alice, b"2", "2.bin")
    others = upload_of(bob, b"3", "3.bin")
    assert attachable(alice.pk, [second.pk, first.pk]) == [second, first]
    assert attachable(alice.pk, []) == []
    assert attachable(alice.pk, [first.pk, others.pk]) is None
    assert attachable(alice.pk, [first.pk, first.pk]) is None
    assert attachable(alice.pk, [first.pk, "no-such-upload"]) is None
    assert attachable(alice.pk, [first.pk] + [f"x{n}" for n in range(10)]) is None
    message = message_between(alice, "bob")
    attach(attachable(alice.pk, [second.pk, first.pk], lock=True), message.pk)
    # Sent: neither may go with another message.
    assert attachable(alice.pk, [first.pk]) is None
    with pytest.raises(ChatError) as refused:
        attach([first], message_between(alice, "bob").pk)
    assert refused.value.code == "not_found"
    assert attachments_of([message.pk]) == {
        message.pk: [attachment_data(second), attachment_data(first)]
    }


def test_ten_files_go_with_one_message_and_a_page_reads_them_in_one_query(
    alice, bob, django_assert_num_queries
):
    files = [upload_of(alice, f"{n}".encode(), f"{n}.bin") for n in range(10)]
    first, second = message_between(alice, "bob"), message_between(alice, "bob")
    attach(attachable(alice.pk, [f.pk for f in files[:9]]), first.pk)
    attach(attachable(alice.pk, [files[9].pk]), second.pk)
    with django_assert_num_queries(1):
        found = attachments_of([first.pk, second.pk, 999_999])
    assert [a["name"] for a in found[first.pk]] == [f"{n}.bin" for n in range(9)]
    assert [a["name"] for a in found[second.pk]] == ["9.bin"]
    assert set(found[first.pk][0]) == ATTACHMENT_FIELDS
    with django_assert_num_queries(0):
        assert attachments_of([]) == {}


# --- Removing files ---------------------------------------------------------------------------


def test_uploads_never_sent_are_removed_after_a_day(
    alice, bob, media, django_capture_on_commit_callbacks
):
    old, fresh = upload_of(alice, png(), "old.png"), upload_of(alice, b"new", "new.bin")
    sent = sent_file(alice, "bob")
    Upload.objects.filter(pk__in=[old.pk, sent.pk]).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_unsent_uploads", stdout=out)
    assert "Removed 1 unsent upload" in out.getvalue()
    assert set(Upload.objects.values_list("pk", flat=True)) == {fresh.pk, sent.pk}
    remaining = {path.relative_to(media).as_posix() for path in stored_files(media)}
    assert remaining == {
        fresh.file.name,
        sent.file.name,
        sent.thumbnail.name,
    }


def test_purging_old_messages_removes_their_files(
    client, alice, bob, media, django_capture_on_commit_callbacks
):
    old, recent = sent_file(alice, "bob"), sent_file(alice, "bob", b"keep", "keep.bin")
    from messaging.models import Message

    Message.objects.filter(pk=old.message_id).update(
        created_at=timezone.now() - timedelta(days=40)
    )
    url = attachment_data(old)["url"]
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_messages", "--older-than", "30", stdout=out)
    assert "Erased 1 message(s) and 1 file(s)" in out.getvalue()
    assert client.get(url, **bearer(bob)).status_code == 404
    assert [path.relative_to(media).as_posix() for path in stored_files(media)] == [
        recent.file.name
    ]


def test_purging_a_message_of_files_alone_deletes_it_for_everyone(
    alice, bob, media, django_capture_on_commit_callbacks
):
    upload = upload_of(alice, png(), "only.png")
    message = services.message_send(
        sender=alice, body="", client_id="files-alone", to="bob", attachments=[upload.pk]
    ).message
    from messaging.models import Message

    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=40))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_messages", "--older-than", "30", stdout=StringIO())
    purged = Message.objects.get(pk=message.pk)
    assert purged.deleted_at is not None
    assert stored_files(media) == []


def test_the_export_holds_the_persons_files(alice, bob, tmp_path):
    photo = sent_file(alice, "bob", png(), "me.png")
    unsent = upload_of(alice, b"draft", "draft.txt")
    upload_of(bob, b"not alice's", "bob.txt")
    target = tmp_path / "alice.json"
    out = StringIO()
    call_command("export_user_data", "alice", "--output", str(target), stdout=out)
    assert "alice.files.zip" in out.getvalue() and "mode 600" in out.getvalue()
    files = json.loads(target.read_text())["files"]
    assert [(f["name"], f["message"], f["in_archive"]) for f in files] == [
        ("me.png", photo.message_id, True),
        ("draft.txt", None, True),
    ]
    archive = tmp_path / "alice.files.zip"
    assert os.stat(archive).st_mode & 0o777 == 0o600
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == [f["archive_name"] for f in files]
        assert opened.read(files[1]["archive_name"]) == b"draft"
        with photo.file.open("rb") as stored:
            assert opened.read(files[0]["archive_name"]) == stored.read()
    assert unsent.pk in files[1]["archive_name"]


# --- Staff ------------------------------------------------------------------------------------


def test_staff_see_a_messages_files_and_the_reported_ones(alice, bob, make_user, settings):
    settings.CHAT_DELETED_RETENTION_DAYS = 30  # staff keep hidden messages to judge them
    staff = Client()
    staff.force_login(make_user(username="moderator", is_staff=True, is_superuser=True))
    upload = sent_file(alice, "bob", b"%PDF-1.4 evidence", "evidence.pdf")
    page = staff.get(f"/admin/messaging/message/{upload.message_id}/change/")
    assert page.status_code == 200
    link = f"/admin/messaging/message/upload/{upload.pk}/"
    assert link in page.content.decode() and "evidence.pdf" in page.content.decode()
    # Staff read a file of a hidden message too, as a download.
    moderation.staff_hide_message(staff=page.wsgi_request.user, message_id=upload.message_id)
    download = staff.get(link)
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert b"".join(download.streaming_content) == b"%PDF-1.4 evidence"

    report = Report.objects.create(message_id=upload.message_id, reporter=bob, reason="spam")
    queue = staff.get(f"/admin/messaging/report/{report.pk}/change/").content.decode()
    assert link in queue and "evidence.pdf" in queue
    # Members may not use the staff's link.
    member = Client()
    member.force_login(bob)
    assert member.get(link).status_code == 302


# --- Settings and deployment ------------------------------------------------------------------


def settings_in_a_process(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_storage_is_the_disk_by_default_and_s3_when_set():
    show = (
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__name__, getattr(s, 'bucket_name', None), "
        "getattr(s, 'endpoint_url', None))"
    )
    local = settings_in_a_process({}, show)
    assert local.stdout.split() == ["FileSystemStorage", "None", "None"], local.stderr
    s3 = settings_in_a_process(
        {
            "CHAT_UPLOADS_STORAGE": "s3",
            "CHAT_S3_BUCKET": "chat-files",
            "CHAT_S3_ENDPOINT_URL": "https://objects.example.org",
        },
        show,
    )
    assert s3.stdout.split() == ["S3Storage", "chat-files", "https://objects.example.org"], (
        s3.stderr
    )


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"CHAT_UPLOADS_STORAGE": "ftp"}, "CHAT_UPLOADS_STORAGE is 'local' or 's3'"),
        ({"MEDIA_ROOT": str(ROOT / "static" / "media")}, "MEDIA_ROOT must not be inside"),
        (
            {"CHAT_UPLOADS_STORAGE": "s3", "CHAT_S3_BUCKET": "b", "CHAT_UPLOADS_X_ACCEL": "/m/"},
            "local storage only",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(env, complaint):
    started = settings_in_a_process(env, "pass")
    assert started.returncode != 0 and complaint in started.stderr


def test_nginx_lets_a_whole_file_through_to_the_upload_endpoint_only(settings):
    site = (ROOT / "deploy" / "nginx" / "chat.conf").read_text()
    location = site[site.index("location = /api/uploads/ {") :]
    location = location[: location.index("}")]
    size = int(location.split("client_max_body_size ")[1].split("m;")[0]) * 1024 * 1024
    assert size >= settings.CHAT_MAX_UPLOAD_BYTES + MULTIPART_SLACK
    internal = site[site.index("location /internal-media/ {") :]
    assert "internal;" in internal[: internal.index("}")]


def test_a_deleted_persons_files_are_removed(
    alice, bob, media, django_capture_on_commit_callbacks
):
    sent_file(alice, "bob")
    upload_of(alice, b"draft", "draft.txt")
    kept = sent_file(bob, "alice", b"bobs", "bob.bin")
    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()
    assert [path.relative_to(media).as_posix() for path in stored_files(media)] == [kept.file.name]
