"""New usernames: none that hide characters, pass for someone else's, or are reserved."""

import json

import pytest
from django.contrib.auth import get_user_model

from messaging.domain.usernames import skeleton
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

User = get_user_model()

CYRILLIC_ALICE = "\u0430lice"  # the first letter is CYRILLIC SMALL LETTER A
GREEK_ALICE = "\u0391LICE"  # the first letter is GREEK CAPITAL LETTER ALPHA
HANGUL_FILLER = "\u3164"

REFUSED = [
    (CYRILLIC_ALICE, "mix Latin, Cyrillic and Greek"),
    (GREEK_ALICE, "mix Latin, Cyrillic and Greek"),
    ("\u0430\u0405\u0456\u0430", "too much like"),  # all Cyrillic, reads "aSia" like "asia"
    ("rnallory", "too much like"),
    ("alice" + HANGUL_FILLER, "invisible"),
    ("ali\u200bce", "invisible"),  # ZERO WIDTH SPACE
    ("\u1160bob", "invisible"),  # HANGUL JUNGSEONG FILLER
    ("admin", "reserved"),
    ("Support", "reserved"),
    ("\u0430dmin", "mix Latin"),
    ("\u0430\u0501m\u0456n", "mix Latin"),
    ("n0reply", "reserved"),
]


@pytest.fixture
def taken(db):
    for name in ("alice", "asia", "mallory"):
        User.objects.create_user(username=name, password=PASSWORD)


def sign_up(client, username: str):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
    )


def register(client, username: str):
    return client.post(
        "/api/auth/register/",
        json.dumps({"username": username, "password": PASSWORD}),
        content_type="application/json",
    )


@pytest.mark.parametrize("username, reason", REFUSED)
def test_the_sign_up_page_refuses_the_name_and_says_why(client, taken, username, reason):
    response = sign_up(client, username)
    assert response.status_code == 200
    errors = response.context["form"].errors["username"]
    assert any(reason in error for error in errors), errors
    assert not User.objects.filter(username=username).exists()


@pytest.mark.parametrize("username, reason", REFUSED)
def test_the_register_api_refuses_the_name_and_says_why(client, taken, username, reason):
    response = register(client, username)
    assert response.status_code == 400
    errors = response.json()["errors"]["username"]
    assert any(reason in error for error in errors), errors
    assert User.objects.count() == 3


@pytest.mark.parametrize(
    "username", ["dave", "\u043c\u0430\u0440\u0438\u044f", "田中さん", "bob_2"]
)
def test_ordinary_names_of_any_script_are_accepted(client, taken, username):
    assert register(client, username).status_code == 201
    assert sign_up(client, username + "2").status_code == 302
    assert User.objects.filter(username=username).exists()


def test_reserved_names_come_from_the_settings(client, settings):
    settings.CHAT_RESERVED_USERNAMES = ["helpdesk"]
    assert register(client, "HelpDesk").status_code == 400
    assert register(client, "admin").status_code == 201


def test_existing_accounts_keep_their_names(client):
    User.objects.create_user(username="support", password=PASSWORD)
    response = client.post(
        "/api/auth/token/",
        json.dumps({"username": "support", "password": PASSWORD}),
        content_type="application/json",
    )
    assert response.status_code == 200


def test_look_alike_letters_share_a_skeleton():
    assert skeleton(CYRILLIC_ALICE) == skeleton(GREEK_ALICE) == skeleton("Alice") == "alice"
