"""Staff moderation in the admin: hiding a message reaches open clients live."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client as HttpClient

from messaging.models import Message
from tests.conftest import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def staff_client(make_user) -> HttpClient:
    staff = make_user(username="moderator", is_staff=True, is_superuser=True)
    client = HttpClient()
    client.force_login(staff)
    return client


async def test_hiding_a_message_in_the_admin_deletes_it_live(connect, alice, bob, make_user):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    ack = await alice_socket.request(send_frame("rude words", "c-1", to="bob"), "message.ack")
    new = await bob_socket.recv_type("message.new")
    message_id = ack["message"]["id"]

    admin = await sync_to_async(staff_client)(make_user)
    response = await sync_to_async(admin.post)(
        "/admin/messaging/message/",
        {"action": "hide_messages", "_selected_action": [message_id]},
    )
    assert response.status_code == 302

    for socket in (alice_socket, bob_socket):
        updated = await socket.recv_type("message.updated")
        assert updated["message"]["id"] == message_id
        assert updated["message"]["deleted"] is True and updated["message"]["body"] == ""
    assert updated["prev_seq"] == new["message"]["seq"]
    stored = await sync_to_async(Message.objects.select_related("hidden_by").get)(pk=message_id)
    assert stored.hidden_by.username == "moderator"


def test_admin_lists_and_searches_messages(make_user, alice, bob):
    from messaging import services

    services.message_send(sender=alice, body="find me please", client_id="c", to="bob")
    services.message_send(sender=bob, body="something else", client_id="d", to="alice")
    admin = staff_client(make_user)
    page = admin.get("/admin/messaging/message/?q=find").content.decode()
    assert "find me please" in page and "something else" not in page
    for path in (
        "/admin/messaging/conversation/",
        "/admin/messaging/membership/",
        "/admin/messaging/authtoken/",
    ):
        assert admin.get(path).status_code == 200


def test_demo_users_are_made_once_and_their_logins_printed(db, settings, tmp_path):
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    first = StringIO()
    call_command("create_demo_users", stdout=first)
    logins = dict(line.split() for line in first.getvalue().splitlines()[1:])
    assert set(logins) == {"alice", "bob", "carol"}
    assert get_user_model().objects.get(username="bob").check_password(logins["bob"])
    again = StringIO()
    call_command("create_demo_users", stdout=again)
    assert again.getvalue() == first.getvalue()
