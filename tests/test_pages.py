"""Pages: login, sign-up, inbox, conversation, the direct-message shortcut; XSS stays inert."""

import json
import re

import pytest
from django.test import Client

from messaging.domain import services
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


def test_a_link_to_someone_unknown_is_the_chats_own_page_naming_them(client, alice):
    client.force_login(alice)
    response = client.get("/dm/nosuchuser/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'data-testid="problem"' in html and "Back to the inbox" in html
    assert "There is no one called “nosuchuser” on this chat" in html
    # The name is shown as text, never as markup.
    assert XSS not in client.get("/dm/" + XSS + "/").content.decode()


def log_in(client, username: str, password: str) -> str:
    """Post the login form; return the error it shows (empty after a login)."""
    response = client.post("/accounts/login/", {"username": username, "password": password})
    if response.status_code == 302:
        return ""
    errors = re.search(r'data-testid="form-error">(.*?)</div>', response.content.decode(), re.S)
    return re.sub(r"<[^>]+>", "", errors.group(1)).strip()


def test_a_deactivated_person_with_the_right_password_is_told_the_account_is_off(
    client, make_user
):
    make_user(username="gone", is_active=False)
    said = log_in(client, "gone", PASSWORD)
    assert said.startswith("This account has been deactivated")
    assert "_auth_user_id" not in client.session


def test_a_wrong_password_says_the_same_for_deactivated_missing_and_active_names(
    client, make_user, alice
):
    make_user(username="gone", is_active=False)
    wrong = [log_in(Client(), name, "not the password") for name in ("gone", "nobody", "alice")]
    assert wrong[0] == wrong[1] == wrong[2]
    assert "correct username and password" in wrong[0]


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


def page_data(html: str, element_id: str):
    """The JSON a page hands to its script in a `json_script` element."""
    found = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, f"no {element_id} data in the page"
    return json.loads(found.group(1))


def test_messages_and_inbox_rows_reach_the_page_as_data_for_the_one_renderer(client, alice, bob):
    services.message_send(sender=bob, body="Hello <b>Alice</b>", client_id="c1", to="alice")
    message = services.message_send(sender=alice, body="Hi Bob", client_id="c2", to="bob").message
    client.force_login(alice)
    html = client.get(f"/c/{message.conversation_id}/").content.decode()
    config = page_data(html, "chat-config")
    assert [m["body"] for m in config["history"]] == ["Hello <b>Alice</b>", "Hi Bob"]
    [row] = page_data(html, "chat-conversations")
    assert row["last_message"]["body"] == "Hi Bob"
    # The client draws the rows and the messages; the page carries them only as data.
    assert 'data-testid="message"' not in html and 'data-testid="inbox-item"' not in html
    assert "<b>Alice</b>" not in html


def test_settings_page_shows_privacy_choices_and_tokens(client, alice):
    from messaging.domain.tokens import token_issue
    from messaging.models import UserSettings

    UserSettings.objects.create(user=alice, show_presence=False)
    key = token_issue(user=alice, name="<b>laptop</b>")
    client.force_login(alice)
    response = client.get("/settings/")
    assert response.status_code == 200
    html = response.content.decode()
    config = response.context["settings_config"]
    assert config["privacy"] == {"show_presence": False, "send_read_receipts": True}
    assert [token["name"] for token in config["tokens"]] == ["<b>laptop</b>"]
    assert 'data-testid="show-presence-toggle"' in html
    assert 'data-testid="read-receipts-toggle"' in html and "checked" in html
    assert "<b>laptop</b>" not in html, "token names are data, never markup"
    assert key not in html
    assert '<script type="module" src="/static/messaging/settings.js"></script>' in html


def test_settings_page_needs_login(client):
    response = client.get("/settings/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/settings/"


def test_the_chat_links_to_the_settings_page(client, alice):
    client.force_login(alice)
    assert 'href="/settings/"' in client.get("/").content.decode()


def test_pages_and_api_answers_with_messages_are_never_stored_by_caches(client, alice, bob):
    from messaging.domain.tokens import token_issue

    message = services.message_send(sender=alice, body="hi", client_id="c", to="bob").message
    conversation = message.conversation_id
    client.force_login(alice)
    for path in (
        "/",
        f"/c/{conversation}/",
        "/settings/",
        "/api/conversations/",
        f"/api/conversations/{conversation}/messages/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
        assert response["Pragma"] == "no-cache", path
    with_token = Client().get(
        "/api/conversations/", HTTP_AUTHORIZATION=f"Bearer {token_issue(user=alice)}"
    )
    assert "no-store" in with_token["Cache-Control"]
    refused = Client().get("/api/conversations/")
    assert refused.status_code == 401 and "no-store" in refused["Cache-Control"]


def test_static_files_stay_cacheable_for_a_signed_in_person(client, alice):
    client.force_login(alice)
    response = client.get("/static/messaging/chat.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_no_template_comment_shows_on_a_page(client, alice, bob):
    # Django's {# #} comments end at the line's end: one spread over lines is printed as text.
    conversation, _ = services.conversation_open_direct(user=alice, other=bob)
    pages = ["/accounts/login/", "/accounts/signup/"]
    for path in pages:
        assert "{#" not in client.get(path).content.decode(), path
    client.force_login(alice)
    for path in ("/", f"/c/{conversation.pk}/", "/settings/", "/shell/"):
        assert "{#" not in client.get(path).content.decode(), path


def test_a_page_the_database_does_not_answer_for_is_a_503_with_a_retry(alice, monkeypatch, caplog):
    """PostgreSQL restarting, or a pool with no connection in time: 503 and a retry in the
    visitor's language, a warning in the log, and no traceback; other errors stay 500."""
    from django.db import OperationalError

    from messaging.web import views

    def unreachable(**kwargs):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(views.selectors, "conversation_page_for_user", unreachable)
    client = Client(HTTP_ACCEPT_LANGUAGE="de", raise_request_exception=False)
    client.force_login(alice)
    with caplog.at_level("WARNING"):
        page = client.get("/")
    assert page.status_code == 503
    assert page["Retry-After"] == "5"
    assert "Der Chat erreicht seine Datenbank gerade nicht" in page.content.decode()
    assert [r.levelname for r in caplog.records if "database unavailable" in r.getMessage()] == [
        "WARNING"
    ]
    assert not [r for r in caplog.records if r.exc_info]

    def broken(**kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(views.selectors, "conversation_page_for_user", broken)
    assert client.get("/").status_code == 500
