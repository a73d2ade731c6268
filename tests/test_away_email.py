"""Missed-message emails and email addresses, through a real SMTP server on 127.0.0.1
(aiosmtpd): what is sent, when, to whom, and the links in it."""

from __future__ import annotations

import email
import re
import time
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from messaging.domain import presence, reading, services
from messaging.domain.email_addresses import address_set, address_verify, verification_token
from messaging.jobs import duties
from messaging.jobs.runner import Runner
from messaging.models import Membership, Message, UserSettings, VerifiedEmail
from tests.helpers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "https://chat.example.org"


class Inbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        parsed["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(parsed)
        return "250 OK"

    def wait(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} emails, not {count}"
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.CHAT_SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "chat@chat.example.org"
    yield inbox
    controller.stop()


def verified(user, address: str) -> None:
    address_set(user=user, address=address)
    VerifiedEmail.objects.update_or_create(
        user=user, defaults={"address": address, "verified_at": timezone.now()}
    )


def send(sender, body: str, *, to: str | None = None, conversation_id: int | None = None):
    return services.message_send(
        sender=sender,
        body=body,
        client_id=f"e-{sender.pk}-{body}",
        to=to,
        conversation_id=conversation_id,
    ).message


def age(messages, minutes: float) -> None:
    """Make messages as old as if written `minutes` ago."""
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def run_emails() -> int:
    """Run the email scan and the jobs, as a worker does."""
    duties.run_now("email_scan")
    duties.run_due([duty for duty in duties.DUTIES if duty.name == "email_scan"])
    return Runner(threads=2).run_until_idle(timeout=30)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def test_messages_left_unread_past_the_delay_come_as_one_email_with_links(
    alice, bob, smtp, client
):
    verified(bob, "bob@example.net")
    first = send(alice, "did you see the report?", to="bob")
    second = send(alice, "it is <b>urgent</b> & short", to="bob")
    age([first, second], 11)

    run_emails()
    (mail,) = smtp.wait(1)
    assert mail["To"] == "bob@example.net"
    assert mail["Subject"] == "2 new messages from alice"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # (Folded onto its own line: the parser keeps the folding space.)
    unsubscribe = re.fullmatch(r"<(https://\S+)>", mail["List-Unsubscribe"].strip())
    assert unsubscribe and unsubscribe[1].startswith(f"{SITE}/email/unsubscribe/")
    text, html = parts(mail)
    conversation_url = f"{SITE}/c/{first.conversation_id}/"
    for body in (text, html):
        assert conversation_url in body and unsubscribe[1] in body
        assert "did you see the report?" in body
    assert "it is <b>urgent</b> & short" in text
    assert "it is &lt;b&gt;urgent&lt;/b&gt; &amp; short" in html

    # The links work: the conversation (for bob), and unsubscribing without a login.
    client.force_login(bob)
    assert client.get(urlsplit(conversation_url).path).status_code == 200
    client.logout()
    path = urlsplit(unsubscribe[1]).path
    assert client.get(path).status_code == 200
    assert UserSettings.objects.filter(user=bob, email=False).count() == 0  # GET changes nothing
    one_click = client.post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert one_click.status_code == 200
    assert UserSettings.objects.get(user=bob).email is False

    # Never the same messages twice, and nothing at all once unsubscribed.
    third = send(alice, "still there?", to="bob")
    age([third], 11)
    run_emails()
    assert len(smtp.messages) == 1


def test_the_next_burst_gets_its_own_email_with_only_its_messages(alice, bob, smtp):
    verified(bob, "bob@example.net")
    UserSettings.objects.create(user=bob, email_delay_minutes=5)
    early = send(alice, "morning", to="bob")
    age([early], 6)
    run_emails()
    smtp.wait(1)
    later = send(alice, "afternoon", to="bob")
    run_emails()
    assert len(smtp.messages) == 1  # not yet: "afternoon" waited less than 5 minutes
    age([later], 6)
    run_emails()
    mail = smtp.wait(2)[1]
    text, _ = parts(mail)
    assert mail["Subject"] == "1 new message from alice"
    assert "afternoon" in text and "morning" not in text


def test_reading_the_conversation_before_the_delay_sends_nothing(alice, bob, smtp):
    verified(bob, "bob@example.net")
    message = send(alice, "quick question", to="bob")
    reading.conversation_mark_read(
        user=bob, conversation_id=message.conversation_id, up_to=message.id
    )
    age([message], 30)
    run_emails()
    time.sleep(0.3)
    assert smtp.messages == []


def test_without_previews_the_email_says_how_many_and_not_what(alice, bob, carol, smtp):
    verified(bob, "bob@example.net")
    UserSettings.objects.create(user=bob, previews=False)
    group = services.conversation_create_group(creator=alice, others=[bob, carol], title="Launch")
    sent = [send(alice, "the secret date is friday", conversation_id=group.pk)]
    sent.append(send(carol, "and the price is 42", conversation_id=group.pk))
    age(sent, 15)
    run_emails()
    (mail,) = smtp.wait(1)
    assert mail["Subject"] == "2 new messages in Launch"
    for body in parts(mail):
        assert "friday" not in body and "42" not in body
        assert "2 new messages" in body


def test_no_email_to_an_unverified_address_someone_online_or_a_muted_conversation(
    alice, bob, carol, smtp
):
    address_set(user=carol, address="carol@example.net")  # never verified
    verified(bob, "bob@example.net")
    group = services.conversation_create_group(creator=alice, others=[bob, carol], title="Team")
    Membership.objects.filter(user=bob, conversation=group).update(muted=True)
    chatter = send(alice, "chatter", conversation_id=group.pk)
    age([chatter], 20)
    run_emails()
    time.sleep(0.3)
    assert smtp.messages == []

    # A mention gets through the mute.
    mention = send(alice, "@bob please review", conversation_id=group.pk)
    age([mention], 20)
    run_emails()
    (mail,) = smtp.wait(1)
    assert "please review" in parts(mail)[0]

    # Online, bob hears it live: no email while his socket is open.
    presence.socket_opened(user=bob, channel_name="specific.bob!1", process="p1")
    direct = send(alice, "are you here?", to="bob")
    age([direct], 20)
    run_emails()
    time.sleep(0.3)
    assert len(smtp.messages) == 1


def test_an_address_is_verified_by_the_link_sent_to_it_and_only_for_that_address(
    alice, smtp, client
):
    client.force_login(alice)
    response = client.put(
        "/api/me/email/", {"email": "Alice@Example.NET"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json() == {"email": "Alice@example.net", "verified": False}
    Runner(threads=1).run_until_idle(timeout=30)
    (mail,) = smtp.wait(1)
    assert mail["To"] == "Alice@example.net"
    link = re.search(rf"{re.escape(SITE)}(/email/verify/\S+/)", parts(mail)[0])
    assert link

    client.logout()
    page = client.get(link[1])
    assert page.status_code == 200 and b"confirmed" in page.content
    client.force_login(alice)
    assert client.get("/api/me/email/").json() == {"email": "Alice@example.net", "verified": True}

    # A new address needs its own link; the old link does not verify it.
    client.put("/api/me/email/", {"email": "alice@work.example"}, content_type="application/json")
    assert client.get("/api/me/email/").json()["verified"] is False
    assert client.get(link[1]).status_code == 400
    assert client.get("/api/me/email/").json()["verified"] is False

    bad = client.put(
        "/api/me/email/", {"email": "not an address"}, content_type="application/json"
    )
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["email"]


def test_an_unsubscribe_link_works_only_for_its_own_address(alice, bob, smtp, client):
    verified(bob, "bob@example.net")
    from messaging.domain.email_addresses import unsubscribe_token

    old = unsubscribe_token(user_id=bob.pk, address="bob@example.net")
    verified(bob, "bob@new.example")
    assert client.post(f"/email/unsubscribe/{old}/").status_code == 404
    assert not UserSettings.objects.filter(user=bob, email=False).exists()
    forged = old[:-3] + ("AAA" if not old.endswith("AAA") else "BBB")
    assert client.post(f"/email/unsubscribe/{forged}/").status_code == 404
    # A token for bob's address and another user's id is no token at all.
    assert address_verify(verification_token(user_id=alice.pk, address="bob@new.example")) is None


def test_an_email_given_at_sign_up_is_sent_a_link_before_anything_else(client, smtp):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "dora",
            "email": "dora@example.com",
            "password1": "a long pass phrase 9",
            "password2": "a long pass phrase 9",
        },
    )
    assert response.status_code == 302
    api = client.post(
        "/api/auth/register/",
        {"username": "eve", "password": "another long phrase 7", "email": "eve@example.com"},
        content_type="application/json",
    )
    assert api.status_code == 201
    Runner(threads=1).run_until_idle(timeout=30)
    sent = smtp.wait(2)
    assert sorted(mail["To"] for mail in sent) == ["dora@example.com", "eve@example.com"]
    assert all("/email/verify/" in parts(mail)[0] for mail in sent)
    bad = client.post(
        "/api/auth/register/",
        {"username": "fay", "password": "another long phrase 7", "email": "nope"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "email" in bad.json()["errors"]
