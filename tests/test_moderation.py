"""Reports, and staff acting on them through the admin's own views (with CSRF), live."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from messaging.domain import message_changes, moderation, services
from messaging.models import AuthToken, Message, ModerationAction, Report, Upload
from messaging.protocol import ChatError
from tests.helpers import api, send_frame

pytestmark = pytest.mark.django_db(transaction=True)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def report_via_api(user, message_id, reason="spam"):
    return api(user).post(
        f"/api/messages/{message_id}/report/",
        json.dumps({"reason": reason}),
        content_type="application/json",
    )


def send(sender, body, to, client_id):
    return services.message_send(sender=sender, body=body, client_id=client_id, to=to).message


class StaffBrowser:
    """A staff member using the admin with CSRF checks on, as in a browser."""

    def __init__(self, make_user):
        self.user = make_user(username="moderator", is_staff=True, is_superuser=True)
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(self.user)

    def page(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, path
        return response.content.decode()

    def act(self, changelist: str, action: str, ids: list[int]):
        html = self.page(changelist)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]
        response = self.client.post(
            changelist,
            {"action": action, "_selected_action": ids, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.content[:500]
        return response


@pytest.fixture
def staff(make_user):
    return StaffBrowser(make_user)


def test_a_member_reports_once(alice, bob):
    message = send(alice, "buy now", "bob", "c-1")
    first = report_via_api(bob, message.pk, "spam")
    assert first.status_code == 201 and first.json()["status"] == "open"
    again = report_via_api(bob, message.pk, "really spam")
    assert again.status_code == 200
    assert Report.objects.count() == 1


@pytest.mark.parametrize(
    "reason, status", [("", 400), ("   ", 400), ("x" * 1001, 400), (None, 400), (5, 400)]
)
def test_bad_reasons_are_refused(alice, bob, reason, status):
    message = send(alice, "hi", "bob", "c-1")
    response = api(bob).post(
        f"/api/messages/{message.pk}/report/",
        json.dumps({"reason": reason}),
        content_type="application/json",
    )
    assert response.status_code == status
    assert "reason" in response.json()["errors"]
    assert Report.objects.count() == 0


def test_only_members_can_report(alice, bob, carol):
    message = send(alice, "private", "bob", "c-1")
    assert report_via_api(carol, message.pk).status_code == 404
    assert report_via_api(carol, 999999).status_code == 404
    assert Report.objects.count() == 0


def test_the_queue_shows_open_reports_with_context(staff, alice, bob):
    for n in range(5):
        send(alice, f"line {n}", "bob", f"c-{n}")
    reported = Message.objects.get(body="line 2")
    report_via_api(bob, reported.pk, "rude")
    html = staff.page("/admin/messaging/report/")
    assert "line 2" in html and "rude" in html and "alice" in html
    report = Report.objects.get()
    detail = staff.page(f"/admin/messaging/report/{report.pk}/change/")
    for n in range(5):
        assert f"line {n}" in detail, "the messages around it are shown"


async def test_hiding_from_the_queue_disappears_live_and_is_audited(connect, staff, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    ack = await alice_socket.request(send_frame("nasty", "c-1", to="bob"), "message.ack")
    await bob_socket.recv_type("message.new")
    await sync_to_async(report_via_api)(bob, ack["message"]["id"], "nasty")
    report = await database_sync_to_async(Report.objects.get)()

    await sync_to_async(staff.act)("/admin/messaging/report/", "hide_message", [report.pk])

    for socket in (alice_socket, bob_socket):
        updated = await socket.recv_type("message.updated")
        assert updated["message"]["deleted"] is True and updated["message"]["body"] == ""
    report = await database_sync_to_async(Report.objects.select_related("resolved_by").get)()
    assert report.status == "hidden" and report.resolved_by.username == "moderator"
    assert report.resolved_at is not None
    entry = await database_sync_to_async(ModerationAction.objects.select_related("actor").get)()
    assert (entry.kind, entry.actor.username, entry.message_id) == (
        "hide",
        "moderator",
        ack["message"]["id"],
    )


async def test_deactivating_the_sender_closes_their_sockets_and_tokens(connect, staff, alice, bob):
    alice_socket = await connect(alice)
    ack = await alice_socket.request(send_frame("abuse", "c-1", to="bob"), "message.ack")
    await sync_to_async(report_via_api)(bob, ack["message"]["id"], "abuse")
    report = await database_sync_to_async(Report.objects.get)()

    await sync_to_async(staff.act)("/admin/messaging/report/", "deactivate_sender", [report.pk])

    closed = await alice_socket.communicator.receive_output(timeout=3)
    while closed["type"] != "websocket.close":
        closed = await alice_socket.communicator.receive_output(timeout=3)
    assert closed["code"] == 4401
    assert await database_sync_to_async(AuthToken.objects.filter(user=alice).count)() == 0
    report = await database_sync_to_async(Report.objects.get)()
    assert report.status == "deactivated"
    kinds = await database_sync_to_async(
        lambda: list(ModerationAction.objects.values_list("kind", flat=True))
    )()
    assert kinds == ["deactivate"]


def test_deactivation_is_reversible(staff, alice):
    staff.act("/admin/auth/user/", "deactivate", [alice.pk])
    alice.refresh_from_db()
    assert not alice.is_active
    assert (
        Client()
        .post(
            "/api/auth/token/",
            json.dumps({"username": "alice", "password": "correct horse battery staple"}),
            content_type="application/json",
        )
        .status_code
        == 400
    )
    staff.act("/admin/auth/user/", "reactivate", [alice.pk])
    alice.refresh_from_db()
    assert alice.is_active
    assert list(
        ModerationAction.objects.order_by("created_at").values_list("kind", flat=True)
    ) == ["deactivate", "reactivate"]


def test_dismiss_and_restore_are_audited(staff, alice, bob, settings):
    settings.CHAT_DELETED_RETENTION_DAYS = 30  # staff keep hidden messages to restore them
    message = send(alice, "borderline", "bob", "c-1")
    report_via_api(bob, message.pk, "hmm")
    report = Report.objects.get()
    staff.act("/admin/messaging/report/", "dismiss", [report.pk])
    report.refresh_from_db()
    assert report.status == "dismissed"
    moderation.staff_hide_message(staff=staff.user, message_id=message.pk)
    staff.act("/admin/messaging/message/", "restore_messages", [message.pk])
    message.refresh_from_db()
    assert message.deleted_at is None and message.hidden_by is None
    assert sorted(ModerationAction.objects.values_list("kind", flat=True)) == [
        "dismiss",
        "hide",
        "restore",
    ]


def test_the_audit_log_can_be_read_but_not_edited(staff, alice, bob):
    message = send(alice, "x", "bob", "c-1")
    moderation.staff_hide_message(staff=staff.user, message_id=message.pk)
    entry = ModerationAction.objects.get()
    assert "hid a message" in staff.page("/admin/messaging/moderationaction/")
    assert staff.client.get("/admin/messaging/moderationaction/add/").status_code == 403
    change = f"/admin/messaging/moderationaction/{entry.pk}/change/"
    html = staff.client.get(change).content.decode()
    assert 'name="_save"' not in html
    assert staff.client.post(change, {"kind": "dismiss"}).status_code == 403
    delete = f"/admin/messaging/moderationaction/{entry.pk}/delete/"
    assert staff.client.get(delete).status_code == 403
    assert ModerationAction.objects.get().kind == "hide"


def test_users_list_counts_messages_and_reports(staff, alice, bob):
    first = send(alice, "one", "bob", "c-1")
    send(alice, "two", "bob", "c-2")
    report_via_api(bob, first.pk)
    html = staff.page("/admin/auth/user/?o=4")
    row = re.search(r"<tr>.*?alice.*?</tr>", html, re.S)[0]
    cells = re.findall(r'<td class="field-(message_count|report_count)">(\d+)</td>', row)
    assert dict(cells) == {"message_count": "2", "report_count": "1"}


def test_user_input_is_inert_in_the_admin(staff, alice, bob, carol):
    message = send(alice, XSS, "bob", "c-1")
    report_via_api(bob, message.pk, XSS)
    services.conversation_create_group(creator=alice, others=[bob, carol], title=XSS)
    for path in (
        "/admin/messaging/report/",
        f"/admin/messaging/report/{Report.objects.get().pk}/change/",
        "/admin/messaging/message/",
        f"/admin/messaging/message/{message.pk}/change/",
        "/admin/messaging/conversation/",
    ):
        html = staff.page(path)
        assert "<script>alert" not in html and "<img src=x" not in html, path


def test_deleted_and_hidden_messages_lose_their_text_and_files_at_once(
    staff, alice, bob, tmp_path, settings
):
    settings.MEDIA_ROOT = str(tmp_path)
    from django.core.files.uploadedfile import SimpleUploadedFile

    from messaging.domain import uploads

    upload = uploads.store_upload(alice, SimpleUploadedFile("note.txt", b"proof"))
    with_file = services.message_send(
        sender=alice, body="see file", client_id="c-f", to="bob", attachments=[upload.pk]
    ).message
    deleted = send(alice, "regret", "bob", "c-1")
    hidden = send(alice, "abuse", "bob", "c-2")
    message_changes.message_delete(actor=alice, message_id=deleted.pk)
    message_changes.message_delete(actor=alice, message_id=with_file.pk)
    moderation.staff_hide_message(staff=staff.user, message_id=hidden.pk)
    bodies = dict(Message.objects.values_list("pk", "body"))
    assert bodies[deleted.pk] == bodies[hidden.pk] == bodies[with_file.pk] == ""
    assert not Upload.objects.exists()
    with pytest.raises(ChatError) as refused:
        moderation.staff_restore_message(staff=staff.user, message_id=hidden.pk)
    assert refused.value.code == "forbidden" and "erased" in refused.value.detail


def test_kept_for_staff_they_are_erased_once_the_retention_passed(staff, alice, bob, settings):
    settings.CHAT_DELETED_RETENTION_DAYS = 7
    old, recent = send(alice, "old", "bob", "c-1"), send(alice, "recent", "bob", "c-2")
    for message in (old, recent):
        message_changes.message_delete(actor=alice, message_id=message.pk)
    assert Message.objects.get(pk=old.pk).body == "old"  # kept for staff
    Message.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=8))
    out = StringIO()
    call_command("purge_deleted_messages", stdout=out)
    assert "Erased 1 deleted message(s)" in out.getvalue()
    assert dict(Message.objects.values_list("pk", "body")) == {old.pk: "", recent.pk: "recent"}
