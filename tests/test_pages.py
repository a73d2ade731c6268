"""Pages: login, sign-up, inbox, conversation, the direct-message shortcut; XSS stays inert."""

import pytest

from messaging import services
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_pages_need_login(client):
    for path in ("/", "/c/1/", "/dm/bob/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_login_honours_next(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "/dm/alice/"}
    )
    assert response.status_code == 302 and response["Location"] == "/dm/alice/"


def test_signup_creates_the_account_and_signs_in(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "frank", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_signup_shows_form_errors(client):
    response = client.post(
        "/accounts/signup/", {"username": "frank", "password1": "a", "password2": "b"}
    )
    assert response.status_code == 200
    assert "password2" in response.context["form"].errors
    assert "match" in response.content.decode()


def test_signup_is_closed_when_registration_is(client, settings):
    settings.CHAT_REGISTRATION_OPEN = False
    assert client.get("/accounts/signup/").status_code == 403


def test_logout_is_a_post(client, alice):
    client.force_login(alice)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_dm_opens_or_creates_the_conversation(client, alice, bob):
    client.force_login(alice)
    first = client.get("/dm/bob/")
    assert first.status_code == 302 and first["Location"].startswith("/c/")
    assert client.get("/dm/bob/")["Location"] == first["Location"]
    assert client.get(first["Location"]).status_code == 200


def test_dm_to_unknown_user_is_404_and_to_yourself_400(client, alice):
    client.force_login(alice)
    assert client.get("/dm/nobody/").status_code == 404
    assert client.get("/dm/alice/").status_code == 400


def test_conversation_page_is_404_for_non_members(client, alice, bob, carol):
    message = services.message_send(sender=alice, body="private", client_id="c", to="bob").message
    client.force_login(carol)
    response = client.get(f"/c/{message.conversation_id}/")
    assert response.status_code == 404
    assert b"private" not in response.content


def test_xss_in_bodies_and_usernames_is_rendered_as_text(client, make_user, alice):
    villain = make_user(username="x<b>y")
    message = services.message_send(sender=villain, body=XSS, client_id="c", to="alice").message
    client.force_login(alice)
    for path in ("/", f"/c/{message.conversation_id}/"):
        html = client.get(path).content.decode()
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "x<b>y" not in html
        assert "&lt;script&gt;" in html or "\\u003Cscript\\u003E" in html
