"""What reaches a person away from the pages (emails, pushes) comes in their language: the
one they chose in the settings, else their browser's at their last login or sign-up."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from messaging.domain.languages import language_of
from messaging.models import UserSettings
from tests.factories import PASSWORD
from tests.test_away_email import age, parts, run_emails, smtp, verified  # noqa: F401
from tests.test_away_email import send as send_for_email
from tests.test_away_push import deliver, push_service, send, subscribe  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(user, accept_language: str) -> None:
    """Log in through the login page from a browser that asks for these languages."""
    client = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
    page = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert page.status_code == 302, page.content


def choose_language(user, code: str) -> None:
    """Pick a language on the settings page, as the person does."""
    client = Client()
    client.force_login(user)
    chosen = client.post(reverse("set_language"), {"language": code, "next": "/settings/"})
    assert chosen.status_code == 302


def test_an_email_to_a_spanish_speaker_comes_in_spanish(alice, bob, smtp):  # noqa: F811
    choose_language(bob, "es")
    verified(bob, "bob@example.net")
    sent = [
        send_for_email(alice, "did you see the report?", to="bob"),
        send_for_email(alice, "call me", to="bob"),
    ]
    age(sent, 11)
    run_emails()
    (mail,) = smtp.wait(1)
    assert mail["Subject"] == "2 mensajes nuevos de alice"
    text, html = parts(mail)
    assert "alice te escribió mientras no estabas: 2 mensajes nuevos." in text
    assert "te escribió mientras no estabas" in html
    for body in (text, html):
        assert "did you see the report?" in body
        assert "wrote to you" not in body and "Read and answer" not in body


def test_a_push_to_a_german_speaker_without_previews_is_in_german(
    client,
    alice,
    bob,
    carol,
    push_service,  # noqa: F811
):
    browser = push_service.browser()
    subscribe(client, bob, browser)
    choose_language(bob, "de")
    UserSettings.objects.filter(user=bob).update(previews=False)
    send(alice, "the password is swordfish", to="bob")
    deliver()
    (taken,) = push_service.wait_taken(1, browser)
    assert (taken.payload["title"], taken.payload["body"]) == ("alice", "Neue Nachricht")
    # Carol never chose a language nor logged in from a browser: English.
    assert language_of(carol.pk) == "en"


def test_the_browsers_language_at_login_counts_until_one_is_chosen(alice):
    log_in(alice, "es-MX,es;q=0.9")
    assert language_of(alice.pk) == "es"
    choose_language(alice, "ar")
    # A later login from a German browser does not undo a choice made in the settings.
    log_in(alice, "de")
    assert language_of(alice.pk) == "ar"


def test_signing_up_keeps_the_browsers_language():
    page = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").post(
        reverse("signup"),
        {
            "username": "dora",
            "password1": "a long pass phrase 42",
            "password2": "a long pass phrase 42",
        },
    )
    assert page.status_code == 302, page.content
    assert UserSettings.objects.get(user__username="dora").language == "de"
