"""Web Push to people who are away, end to end: the product's send path, its push scan and
worker, to a push service on 127.0.0.1 that checks the VAPID signature and decrypts each
push with the browser's private key (tests/push_service.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from messaging.domain import away, reading, services
from messaging.jobs import duties, vapid
from messaging.jobs.runner import Runner
from messaging.models import Block, Membership, PushShown, PushSubscription, UserSettings
from tests.push_service import PushService

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def push_service(settings):
    service = PushService().start()
    settings.CHAT_PUSH_ENDPOINTS_ALLOWED = [service.origin + "/"]
    settings.CHAT_VAPID_PRIVATE_KEY = vapid.new_private_key()
    settings.CHAT_VAPID_SUBJECT = "mailto:ops@chat.example"
    service.expected_key = vapid.public_key()
    # The scan's first pass notes where the messages are now; pushes start after it.
    duties.run_now("push_scan")
    duties.run_due(duties.DUTIES[:1])
    yield service
    service.stop()


def subscribe(client, user, browser) -> None:
    """Subscribe as the settings page does: POST the browser's PushSubscription."""
    client.force_login(user)
    response = client.post(
        "/api/push/subscriptions/", browser.subscription(), content_type="application/json"
    )
    assert response.status_code == 201, response.content
    client.logout()


def deliver() -> int:
    """Run the push scan and then every job, as a worker does; return how many jobs ran."""
    duties.run_now("push_scan")
    duties.run_due(duties.DUTIES[:1])
    return Runner(threads=2).run_until_idle(timeout=30)


def send(sender, body: str, *, to: str | None = None, conversation_id: int | None = None):
    return services.message_send(
        sender=sender,
        body=body,
        client_id=f"c-{sender.pk}-{body}",
        to=to,
        conversation_id=conversation_id,
    ).message


def test_someone_away_gets_one_push_per_message_with_sender_text_and_tag(
    client, alice, bob, push_service
):
    browser = push_service.browser()
    subscribe(client, bob, browser)

    first = send(alice, "are you there?", to="bob")
    second = send(alice, "lunch at noon", to="bob")
    deliver()

    taken = push_service.wait_taken(2, browser)
    assert [push.payload["body"] for push in taken] == ["are you there?", "lunch at noon"]
    assert [push.payload["message"] for push in taken] == [first.id, second.id]
    for push in taken:
        assert push.payload["type"] == "message"
        assert push.payload["title"] == "alice"
        assert push.payload["tag"] == f"conversation-{first.conversation_id}"
        assert push.payload["url"] == f"/c/{first.conversation_id}/"
        assert push.headers["Urgency"] == "high"
    assert push_service.problems == []
    # Once: the scan and the jobs ran again, nothing new is pushed.
    deliver()
    assert len(push_service.taken(browser)) == 2


async def test_someone_with_a_socket_open_gets_no_push(client, alice, bob, push_service, connect):
    browser = push_service.browser()
    await sync_to_async(subscribe)(client, bob, browser)
    bob_socket = await connect(bob)
    assert await sync_to_async(away.online_ids)([bob.pk]) == {bob.pk}

    await sync_to_async(send)(alice, "you are online", to="bob")
    frame = await bob_socket.recv_type("message.new")
    assert frame["message"]["body"] == "you are online"
    await sync_to_async(deliver)()

    await bob_socket.close()
    assert await sync_to_async(away.online_ids)([bob.pk]) == set()
    await sync_to_async(send)(alice, "now you are away", to="bob")
    await sync_to_async(deliver)()
    taken = push_service.wait_taken(1, browser)
    assert [push.payload["body"] for push in taken] == ["now you are away"]


def test_nobody_is_pushed_their_own_messages(client, alice, bob, push_service):
    alice_browser = push_service.browser()
    subscribe(client, alice, alice_browser)
    send(alice, "from me", to="bob")
    deliver()
    assert push_service.taken() == []


def test_a_muted_conversation_pushes_nothing_but_a_mention_of_the_person_gets_through(
    client, alice, bob, carol, push_service
):
    browser = push_service.browser()
    subscribe(client, bob, browser)
    group = services.conversation_create_group(creator=alice, others=[bob, carol], title="Team")
    client.force_login(bob)
    muted = client.patch(
        f"/api/conversations/{group.pk}/", {"muted": True}, content_type="application/json"
    )
    assert muted.status_code == 200 and muted.json()["muted"] is True

    send(alice, "general chatter", conversation_id=group.pk)
    send(carol, "@bob can you look at this?", conversation_id=group.pk)
    deliver()

    (taken,) = push_service.wait_taken(1, browser)
    assert taken.payload["body"] == "@bob can you look at this?"
    assert taken.payload["title"] == "carol in Team"
    assert taken.payload["mention"] is True
    deliver()
    assert len(push_service.taken(browser)) == 1


def test_with_previews_off_the_push_names_the_conversation_and_not_the_text(
    client, alice, bob, carol, push_service
):
    browser = push_service.browser()
    subscribe(client, bob, browser)
    UserSettings.objects.create(user=bob, previews=False)
    group = services.conversation_create_group(
        creator=alice, others=[bob, carol], title="Secret plans"
    )

    send(alice, "the password is swordfish", to="bob")
    send(carol, "meet at dawn", conversation_id=group.pk)
    deliver()

    taken = push_service.wait_taken(2, browser)
    shown = sorted((push.payload["title"], push.payload["body"]) for push in taken)
    assert shown == [("Secret plans", "New message"), ("alice", "New message")]
    for push in taken:
        text = str(push.payload)
        assert "swordfish" not in text and "dawn" not in text


def test_push_off_or_a_block_means_no_push(client, alice, bob, carol, push_service):
    bob_browser, carol_browser = push_service.browser(), push_service.browser()
    subscribe(client, bob, bob_browser)
    subscribe(client, carol, carol_browser)
    UserSettings.objects.create(user=bob, push=False)
    group = services.conversation_create_group(creator=alice, others=[bob, carol], title="Team")
    Block.objects.create(blocker=carol, blocked=alice)

    send(alice, "hello team", conversation_id=group.pk)
    send(bob, "hi all", conversation_id=group.pk)
    deliver()

    (taken,) = push_service.wait_taken(1)
    assert taken.token == carol_browser.token and taken.payload["body"] == "hi all"


def test_a_push_service_answering_410_drops_the_subscription(client, alice, bob, push_service):
    gone, kept = push_service.browser("gone"), push_service.browser()
    subscribe(client, bob, gone)
    subscribe(client, bob, kept)

    send(alice, "first", to="bob")
    deliver()
    assert [push.payload["body"] for push in push_service.wait_taken(1, kept)] == ["first"]
    assert list(PushSubscription.objects.values_list("endpoint", flat=True)) == [kept.endpoint]

    send(alice, "second", to="bob")
    deliver()
    assert len(push_service.wait_taken(2, kept)) == 2
    assert sum(1 for r in push_service.received if r.token == gone.token) == 1


def test_reading_the_conversation_elsewhere_closes_its_notification(
    client, alice, bob, push_service
):
    browser = push_service.browser()
    subscribe(client, bob, browser)
    message = send(alice, "read me", to="bob")
    deliver()
    push_service.wait_taken(1, browser)
    assert PushShown.objects.filter(message_id=message.id).exists()

    reading.conversation_mark_read(
        user=bob, conversation_id=message.conversation_id, up_to=message.id
    )
    deliver()

    closed = push_service.wait_taken(2, browser)[1]
    assert closed.payload == {
        "type": "read",
        "conversation": message.conversation_id,
        "up_to": message.id,
        "tag": f"conversation-{message.conversation_id}",
    }
    assert not PushShown.objects.exists()
    # Read already: a later pass pushes nothing more.
    deliver()
    assert len(push_service.taken(browser)) == 2


def test_a_message_read_before_the_worker_saw_it_is_not_pushed(client, alice, bob, push_service):
    browser = push_service.browser()
    subscribe(client, bob, browser)
    message = send(alice, "seen on my phone", to="bob")
    Membership.objects.filter(user=bob).update(last_read_message_id=message.id)
    deliver()
    assert push_service.taken() == []
