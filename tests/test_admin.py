"""Staff moderation in the admin: hiding a message reaches open clients live."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client as HttpClient

from messaging.models import Message
from tests.helpers import send_frame

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
    from messaging.domain import services

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


# Who may do what in the admin: staff act only with the permission for the action.


def staff_with(make_user, *codenames: str, username: str = "helper", superuser=False):
    """Make a staff member holding only the given permissions; return them and a client."""
    from django.contrib.auth.models import Permission

    staff = make_user(username=username, is_staff=True, is_superuser=superuser)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = HttpClient()
    client.force_login(staff)
    return staff, client


VIEW_ONLY = ("view_message", "view_report", "view_user", "view_conversation", "view_membership")


def reported_message(alice, bob):
    from messaging.domain import moderation, services

    message = services.message_send(sender=alice, body="rude", client_id="c-1", to="bob").message
    report, _ = moderation.report_create(reporter=bob, message_id=message.pk, reason="rude")
    return message, report


@pytest.mark.parametrize(
    "changelist, action, target",
    [
        ("/admin/messaging/message/", "hide_messages", "message"),
        ("/admin/messaging/report/", "hide_message", "report"),
        ("/admin/messaging/report/", "deactivate_sender", "report"),
        ("/admin/messaging/report/", "dismiss", "report"),
        ("/admin/auth/user/", "deactivate", "alice"),
    ],
)
def test_view_only_staff_are_not_offered_actions_and_a_forged_one_does_nothing(
    make_user, alice, bob, changelist, action, target
):
    from messaging.models import ModerationAction, Report

    message, report = reported_message(alice, bob)
    _, client = staff_with(make_user, *VIEW_ONLY)
    page = client.get(changelist)
    assert page.status_code == 200
    assert f'value="{action}"' not in page.content.decode()

    target_id = {"message": message.pk, "report": report.pk, "alice": alice.pk}[target]
    client.post(changelist, {"action": action, "_selected_action": [target_id]})

    message.refresh_from_db()
    alice.refresh_from_db()
    assert message.deleted_at is None and alice.is_active
    assert Report.objects.get().status == "open"
    assert not ModerationAction.objects.exists()


def test_staff_who_may_change_users_cannot_deactivate_a_superuser_or_themselves(make_user, alice):
    from django.contrib.auth import get_user_model

    boss = make_user(username="boss", is_staff=True, is_superuser=True)
    staff, client = staff_with(make_user, "view_user", "change_user")
    response = client.post(
        "/admin/auth/user/",
        {"action": "deactivate", "_selected_action": [boss.pk, staff.pk, alice.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "only a superuser can" in page and "you cannot deactivate yourself" in page
    active = dict(get_user_model().objects.values_list("username", "is_active"))
    assert active == {"boss": True, "helper": True, "alice": False}

    # Nor through the change form, where it is not even an editable field.
    form = client.get(f"/admin/auth/user/{boss.pk}/change/").content.decode()
    assert 'name="is_active"' not in form
    client.post(f"/admin/auth/user/{boss.pk}/change/", {"username": "boss", "is_active": ""})
    boss.refresh_from_db()
    assert boss.is_active


def test_staff_who_may_change_users_cannot_raise_themselves_or_set_passwords(make_user, alice):
    staff, client = staff_with(make_user, "view_user", "change_user")
    form = client.get(f"/admin/auth/user/{staff.pk}/change/").content.decode()
    for field in ("is_superuser", "is_staff", "user_permissions", "groups", "username"):
        assert f'name="{field}"' not in form, field
    client.post(
        f"/admin/auth/user/{staff.pk}/change/",
        {"username": "helper", "is_superuser": "on", "is_active": "on", "is_staff": "on"},
    )
    staff.refresh_from_db()
    assert not staff.is_superuser
    password_page = f"/admin/auth/user/{alice.pk}/password/"
    assert client.get(password_page).status_code == 403
    new_password = {"password1": "a whole new passphrase", "password2": "a whole new passphrase"}
    assert client.post(password_page, new_password).status_code == 403
    alice.refresh_from_db()
    assert not alice.check_password("a whole new passphrase")


def test_a_tokens_user_cannot_be_changed_and_tokens_cannot_be_added(make_user, alice, bob):
    from messaging.domain.tokens import token_issue
    from messaging.models import AuthToken

    token_issue(user=alice, name="alice's laptop")
    token = AuthToken.objects.get(user=alice)
    admin = staff_client(make_user)
    change = f"/admin/messaging/authtoken/{token.pk}/change/"
    page = admin.get(change).content.decode()
    assert 'name="user"' not in page and 'name="name"' not in page
    assert admin.post(change, {"user": bob.pk, "name": "mine now"}).status_code == 403
    assert admin.get("/admin/messaging/authtoken/add/").status_code == 403
    token.refresh_from_db()
    assert (token.user_id, token.name) == (alice.pk, "alice's laptop")

    # Revoking stays possible.
    admin.post(f"/admin/messaging/authtoken/{token.pk}/delete/", {"post": "yes"})
    assert not AuthToken.objects.exists()


def test_staff_cannot_add_themselves_to_a_conversation(make_user, alice, bob):
    from messaging.domain import services
    from messaging.models import Membership

    conversation, _ = services.conversation_open_direct(user=alice, other=bob)
    admin = staff_client(make_user)
    moderator_id = admin.session["_auth_user_id"]
    assert admin.get("/admin/messaging/membership/add/").status_code == 403
    added = admin.post(
        "/admin/messaging/membership/add/",
        {"conversation": conversation.pk, "user": moderator_id, "last_read_message_id": 0},
    )
    assert added.status_code == 403

    change = f"/admin/messaging/conversation/{conversation.pk}/change/"
    page = admin.get(change).content.decode()
    assert 'name="memberships-0-user"' not in page
    forged = admin.post(
        change,
        {
            "kind": "group",
            "title": "ours",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": moderator_id,
            "memberships-0-conversation": conversation.pk,
        },
    )
    assert forged.status_code == 403
    assert admin.get("/admin/messaging/conversation/add/").status_code == 403
    assert sorted(
        Membership.objects.filter(conversation=conversation).values_list(
            "user__username", flat=True
        )
    ) == ["alice", "bob"]
    conversation.refresh_from_db()
    assert (conversation.kind, conversation.title) == ("direct", "")


def test_every_page_opens_for_staff_who_may_only_look_and_for_superusers(make_user, alice, bob):
    from messaging.domain.tokens import token_issue
    from messaging.models import AuthToken, Conversation, Membership

    message, report = reported_message(alice, bob)
    token_issue(user=alice)
    _, client = staff_with(make_user, *VIEW_ONLY, "view_authtoken")
    pages = {
        "/admin/auth/user/": f"/admin/auth/user/{alice.pk}/change/",
        "/admin/messaging/message/": f"/admin/messaging/message/{message.pk}/change/",
        "/admin/messaging/report/": f"/admin/messaging/report/{report.pk}/change/",
        "/admin/messaging/conversation/": (
            f"/admin/messaging/conversation/{Conversation.objects.get().pk}/change/"
        ),
        "/admin/messaging/membership/": (
            f"/admin/messaging/membership/{Membership.objects.first().pk}/change/"
        ),
        "/admin/messaging/authtoken/": (
            f"/admin/messaging/authtoken/{AuthToken.objects.get().pk}/change/"
        ),
    }
    for changelist, change in pages.items():
        assert client.get(changelist).status_code == 200, changelist
        page = client.get(change)
        assert page.status_code == 200, change
        assert 'name="_save"' not in page.content.decode(), change
    superuser = staff_client(make_user)
    for changelist, change in pages.items():
        assert superuser.get(changelist).status_code == 200, changelist
        assert superuser.get(change).status_code == 200, change
    own_page = superuser.get(f"/admin/auth/user/{superuser.session['_auth_user_id']}/change/")
    assert own_page.status_code == 200 and 'name="is_active"' not in own_page.content.decode()
    user_page = client.get(pages["/admin/auth/user/"]).content.decode()
    assert alice.password not in user_page, "the password hash is never shown"


async def test_revoking_a_token_in_the_admin_closes_its_sockets(connect, alice, make_user):
    from messaging.models import AuthToken

    socket = await connect(alice)
    token = await database_sync_to_async(AuthToken.objects.get)(user=alice)
    admin = await sync_to_async(staff_client)(make_user)
    await sync_to_async(admin.post)(
        "/admin/messaging/authtoken/",
        {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"},
    )

    closed = await socket.communicator.receive_output(timeout=3)
    while closed["type"] != "websocket.close":
        closed = await socket.communicator.receive_output(timeout=3)
    assert closed["code"] == 4401
    assert not await database_sync_to_async(AuthToken.objects.exists)()


def test_an_actions_note_speaks_the_staff_members_language(make_user, alice, bob):
    from messaging.models import Report

    _, report = reported_message(alice, bob)
    staff = make_user(username="moderatorin", is_staff=True, is_superuser=True)
    client = HttpClient(HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(staff)
    page = client.post(
        "/admin/messaging/report/",
        {"action": "dismiss", "_selected_action": [report.pk]},
        follow=True,
    ).content.decode()
    assert "1 Meldung verworfen." in page
    assert "Verwerfen" in page  # the action itself, in the list's menu
    assert Report.objects.get().status != "open"


def test_the_lists_columns_and_states_speak_the_staff_members_language(make_user, alice, bob):
    from messaging.domain import services

    services.message_send(sender=alice, body="hola", client_id="c", to="bob")
    staff = make_user(username="moderadora", is_staff=True, is_superuser=True)
    client = HttpClient(HTTP_ACCEPT_LANGUAGE="es")
    client.force_login(staff)
    page = client.get("/admin/messaging/message/").content.decode()
    assert "Texto" in page and "Estado" in page  # the columns' headers
    assert ">visible<" in page
    page = client.get("/admin/messaging/conversation/").content.decode()
    assert "Miembros" in page and "Mensajes" in page
