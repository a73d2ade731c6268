"""Group commit: sends stored together answer exactly as sends stored one by one."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from messaging.delivery import fanout
from messaging.domain import blocks, groups, services
from messaging.models import ChangeStream, Conversation, Membership, Message, SocketPresence
from messaging.sending import batch as send_batch
from messaging.sending import queue as sending
from messaging.sending.batch import SendRequest, messages_send_many
from tests.helpers import send_frame


def _chains_hold(events, first_seqs: dict[int, int]) -> dict[int, int]:
    """Check every user's pushes chain prev_seq to seq in order; return their last seqs."""
    last = dict(first_seqs)
    for group, payload in events:
        user_id = int(group.split(".")[1])
        frame = payload["frame"]
        assert frame["prev_seq"] == last.get(user_id, 0), (user_id, frame)
        assert frame["message"]["seq"] > frame["prev_seq"]
        last[user_id] = frame["message"]["seq"]
    return last


@pytest.mark.django_db(transaction=True)
def test_a_batch_answers_each_send_as_alone_and_keeps_every_stamp_chain(make_user):
    alice, bob, carol, dave, erin = (
        make_user(username=name) for name in ("alice", "bob", "carol", "dave", "erin")
    )
    direct, _ = services.conversation_open_direct(user=alice, other=bob)
    bob_carol, _ = services.conversation_open_direct(user=bob, other=carol)
    services.conversation_open_direct(user=alice, other=erin)
    group = services.conversation_create_group(creator=alice, others=[bob, carol])
    blocks.block_create(blocker=erin, username="alice")
    earlier = services.message_send(sender=alice, body="earlier", client_id="a-0", to="bob")
    first_seqs = dict(ChangeStream.objects.values_list("user_id", "last_seq"))
    SocketPresence.objects.create(
        channel_name="specific.other!bob", user=bob, process="another process"
    )

    requests = [
        SendRequest(alice, "hello", "a-1", to="bob"),
        SendRequest(bob, "hi", "b-1", conversation_id=direct.pk),
        SendRequest(alice, "hello", "a-1", to="bob"),  # the same send again: a retry
        SendRequest(alice, "another body", "a-1", to="bob"),
        SendRequest(carol, "hi all", "c-1", conversation_id=group.pk),
        SendRequest(dave, "nice to meet you", "d-1", to="carol"),  # a new conversation
        SendRequest(alice, "let me in", "a-2", to="erin"),
        SendRequest(alice, "not mine", "a-3", conversation_id=bob_carol.pk),
        SendRequest(bob, "   ", "b-2", conversation_id=direct.pk),
        SendRequest(dave, "anyone?", "d-2", to="nobody"),
        SendRequest(alice, "earlier", "a-0", to="bob"),  # a retry of a stored message
        SendRequest(bob, "and again", "b-3", conversation_id=direct.pk),
    ]
    outcomes, delivery = messages_send_many(requests)

    errors = [outcome.error.code if outcome.error else None for outcome in outcomes]
    assert errors == [
        None,
        None,
        None,
        "conflict",
        None,
        None,
        "cannot_send",
        "not_found",
        "empty",
        "not_found",
        None,
        None,
    ]
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome.error is not None:
            assert outcome.error.client_id == request.client_id
    created = [outcome.result.created if outcome.result else None for outcome in outcomes]
    assert created == [True, True, False, None, True, True, None, None, None, None, False, True]
    assert outcomes[2].result.message.pk == outcomes[0].result.message.pk
    assert outcomes[10].result.message.pk == earlier.message.pk

    # What was acked is what is stored, and nothing twice.
    for outcome in outcomes:
        if outcome.result is not None and outcome.result.created:
            told = outcome.result.message
            stored = Message.objects.get(pk=told.pk)
            assert (stored.body, stored.seq, stored.conversation_id, stored.sender_id) == (
                told.body,
                told.seq,
                told.conversation_id,
                told.sender_id,
            )
            assert stored.created_at == told.created_at
            assert stored.sent_hash == Message.hash_body(told.body)
    assert Message.objects.filter(sender=alice, client_id="a-1").count() == 1

    # Each member is told once, with prev_seq chaining their stamps in commit order.
    last = _chains_hold(delivery.events, first_seqs)
    assert last == {
        stream.user_id: stream.last_seq for stream in ChangeStream.objects.filter(user_id__in=last)
    }
    bob_frames = [
        payload["frame"]["message"]["body"]
        for group_name, payload in delivery.events
        if group_name == f"user.{bob.pk}"
    ]
    assert sorted(bob_frames) == sorted(["hello", "hi", "hi all", "and again"])
    assert delivery.routes[bob.pk] == ["specific.other!bob"]


@pytest.mark.django_db(transaction=True)
def test_first_messages_open_their_conversations_as_they_would_alone(make_user, settings):
    settings.CHAT_CONVERSATION_RATE = "2/86400s"
    alice, bob, _carol, dave, erin, frank = (
        make_user(username=name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")
    )
    frank.is_active = False
    frank.save()
    blocks.block_create(blocker=erin, username="alice")
    # Alice's first new conversation of two allowed.
    services.message_send(sender=alice, body="hi carol", client_id="a-0", to="carol")

    requests = [
        SendRequest(alice, "hi dave", "a-0", to="dave"),  # a client_id used: opens nothing
        SendRequest(alice, "hi bob", "a-1", to="bob"),  # her second
        SendRequest(bob, "hi alice", "b-1", to="alice"),  # the same pair, the other way
        SendRequest(alice, "hi dave", "a-2", to="dave"),  # her third: over the limit
        SendRequest(alice, "hi erin", "a-3", to="erin"),  # blocked
        SendRequest(dave, "hi frank", "d-1", to="frank"),  # deactivated
    ]
    outcomes, delivery = messages_send_many(requests)

    errors = [outcome.error.code if outcome.error else None for outcome in outcomes]
    assert errors == [
        "conflict",
        None,
        None,
        "rate_limited",
        "cannot_send",
        "cannot_send",
    ]
    assert outcomes[3].error.retry_after > 0 and outcomes[3].error.client_id == "a-2"
    pair = {outcomes[1].result.message.conversation_id, outcomes[2].result.message.conversation_id}
    assert len(pair) == 1
    opened = Conversation.objects.get(pk=pair.pop())
    assert opened.direct_key == Conversation.direct_key_for(alice.pk, bob.pk)
    assert opened.created_by == alice and opened.kind == Conversation.Kind.DIRECT
    assert sorted(opened.memberships.values_list("user__username", flat=True)) == [
        "alice",
        "bob",
    ]
    # Nothing opened for the refused sends.
    assert Conversation.objects.count() == 2
    assert [m.body for m in Message.objects.filter(conversation=opened).order_by("seq")] == [
        "hi bob",
        "hi alice",
    ]
    last = _chains_hold(delivery.events, {alice.pk: 1})
    assert last == {alice.pk: 3, bob.pk: 3}
    # The next message to the pair finds it as any existing conversation.
    again, _ = messages_send_many([SendRequest(bob, "so", "b-2", to="alice")])
    assert again[0].result.message.conversation_id == opened.pk


@pytest.mark.django_db(transaction=True)
def test_a_conversation_opened_counts_once_and_a_repeated_client_id_opens_nothing(
    make_user, settings
):
    alice, bob, carol, dave, _erin = (
        make_user(username=name) for name in ("alice", "bob", "carol", "dave", "erin")
    )
    services.conversation_open_direct(user=alice, other=dave)
    carol_dave, _ = services.conversation_open_direct(user=carol, other=dave)
    settings.CHAT_CONVERSATION_RATE = "1/86400s"  # from now on: one new conversation each

    requests = [
        SendRequest(alice, "hi bob", "a-1", to="bob"),  # her one opening allowed
        SendRequest(alice, "are you there?", "a-2", to="bob"),  # the same conversation
        SendRequest(bob, "yes", "b-1", to="alice"),  # and the other way
        SendRequest(carol, "hi dave", "c-1", conversation_id=carol_dave.pk),
        SendRequest(carol, "hi bob", "c-1", to="bob"),  # a client_id stored just before
        SendRequest(dave, "   ", "d-1", to="erin"),  # a blank body: refused first
    ]
    outcomes, _ = messages_send_many(requests)

    errors = [outcome.error.code if outcome.error else None for outcome in outcomes]
    assert errors == [None, None, None, None, "conflict", "empty"]
    assert len({outcome.result.message.conversation_id for outcome in outcomes[:3]}) == 1
    # Nothing opened for carol's retry nor for dave's blank message; limits untouched.
    assert Conversation.objects.count() == 3
    later, _ = messages_send_many(
        [
            SendRequest(carol, "hi bob", "c-2", to="bob"),
            SendRequest(dave, "hi erin", "d-2", to="erin"),
            SendRequest(alice, "hi carol", "a-3", to="carol"),  # her second: over
        ]
    )
    assert [outcome.error.code if outcome.error else None for outcome in later] == [
        None,
        None,
        "rate_limited",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_name_that_changed_hands_reaches_its_new_holder(alice, make_user):
    old_bob = make_user(username="bob")
    send_batch.remember_user(old_bob.pk, "bob")  # as learnt at the old bob's handshake
    old_bob.username = "robert"
    old_bob.save()
    new_bob = make_user(username="bob")

    outcomes, _ = messages_send_many([SendRequest(alice, "hi", "a-1", to="bob")])

    opened = Conversation.objects.get(pk=outcomes[0].result.message.conversation_id)
    assert set(opened.memberships.values_list("user_id", flat=True)) == {alice.pk, new_bob.pk}
    assert not Membership.objects.filter(user=old_bob).exists()


@pytest.mark.django_db(transaction=True)
def test_a_pair_opened_meanwhile_is_used_not_doubled(alice, bob, monkeypatch):
    existing, _ = services.conversation_open_direct(user=bob, other=alice)
    opened = []
    open_direct = send_batch.BatchSql.open_direct

    def looked_too_early(sql, keys):
        return []  # as if bob opened it just after the batch looked

    def recorded_open(sql, openings, *, now):
        opened.append(list(openings))
        return open_direct(sql, openings, now=now)

    monkeypatch.setattr(send_batch.BatchSql, "direct_conversations", looked_too_early)
    monkeypatch.setattr(send_batch.BatchSql, "open_direct", recorded_open)
    outcomes, _ = messages_send_many([SendRequest(alice, "hi", "a-1", to="bob")])

    assert len(opened) == 1
    assert outcomes[0].result.message.conversation_id == existing.pk
    assert Conversation.objects.count() == 1
    assert Membership.objects.filter(conversation=existing).count() == 2


@pytest.mark.django_db(transaction=True)
async def test_concurrent_sends_are_all_acked_stored_and_pushed_once(connect, make_user):
    users = [await database_sync_to_async(make_user)(username=f"u{i}") for i in range(8)]
    sockets = [await connect(user) for user in users]
    # Everyone writes to the next person at the same moment, three times over.
    for round_ in range(3):
        await asyncio.gather(
            *(
                sockets[i].send(
                    send_frame(f"r{round_} from u{i}", f"c{round_}", to=f"u{(i + 1) % 8}")
                )
                for i in range(8)
            )
        )
    received: dict[int, list[dict]] = {i: [] for i in range(8)}
    acks = {i: 0 for i in range(8)}
    for i, socket in enumerate(sockets):
        while acks[i] < 3 or len(received[i]) < 6:
            frame = await socket.recv()
            if frame["type"] == "message.ack":
                acks[i] += 1
            elif frame["type"] == "message.new":
                received[i].append(frame)
        assert await socket.nothing(0.2)
    stored = await database_sync_to_async(Message.objects.count)()
    assert stored == 24
    for i in range(8):
        bodies = sorted(frame["message"]["body"] for frame in received[i])
        expected = [f"r{r} from u{j}" for r in range(3) for j in (i, (i - 1) % 8)]
        assert bodies == sorted(expected)
        # The pushes of one socket chain, in order.
        previous = 0
        for frame in received[i]:
            assert frame["prev_seq"] == previous
            previous = frame["message"]["seq"]


async def _stored_count(expected: int, within: float = 3) -> int:
    """Wait until `expected` messages are stored (or the time is up); return the count."""
    count = 0
    for _ in range(int(within / 0.02)):
        count = await database_sync_to_async(Message.objects.count)()
        if count >= expected:
            break
        await asyncio.sleep(0.02)
    return count


async def _next_frames(socket, count: int) -> list[tuple[str, str]]:
    """Receive a socket's next frames as (type, message body)."""
    frames = [await socket.recv() for _ in range(count)]
    return [(frame["type"], frame["message"]["body"]) for frame in frames]


@pytest.mark.django_db(transaction=True)
async def test_slow_pushes_hold_storing_back_by_one_batch_a_lane_and_keep_commit_order(
    connect, alice, bob, monkeypatch
):
    lanes = sending.lane_count()
    # A socket sends one message at a time: one of alice's sockets per send in flight.
    alice_sockets = [await connect(alice) for _ in range(lanes + 1)]
    bob_socket = await connect(bob)
    await alice_sockets[0].request(send_frame("hello", "c-0", to="bob"), "message.ack")
    for socket in (bob_socket, *alice_sockets):
        await socket.recv_type("message.new")
    # Alice showed herself by writing: Bob is told she is online.
    assert (await bob_socket.recv_type("presence"))["user"]["username"] == "alice"
    gate = asyncio.Event()
    publish = fanout.publish
    held = []

    async def slow_publish(events, routes):
        if not held:
            held.append(events)
            await gate.wait()
        await publish(events, routes)

    monkeypatch.setattr(fanout, "publish", slow_publish)

    await alice_sockets[0].send(send_frame("one", "c-1", to="bob"))
    assert (await alice_sockets[0].recv_type("message.ack"))["client_id"] == "c-1"
    # Its pushes are held; the next batches are stored all the same, one per lane ...
    later = [f"later {n}" for n in range(lanes + 1)]
    for n, body in enumerate(later[:-1]):
        await alice_sockets[n].send(send_frame(body, f"c-l{n}", to="bob"))
        assert await _stored_count(3 + n) == 3 + n
    # ... but not the one after: storing runs at most one batch a lane ahead of the sockets.
    await alice_sockets[lanes].send(send_frame(later[-1], f"c-l{lanes}", to="bob"))
    assert await _stored_count(3 + lanes, within=0.3) == 2 + lanes
    assert await bob_socket.nothing(0.1)

    gate.set()
    pushed = [await bob_socket.recv_type("message.new") for _ in range(2 + lanes)]
    assert [frame["message"]["body"] for frame in pushed] == ["one", *later]
    assert [frame["prev_seq"] for frame in pushed[1:]] == [
        frame["message"]["seq"] for frame in pushed[:-1]
    ]
    # The sender's sockets see each ack before its copy, and everything in commit order.
    for n, socket in enumerate(alice_sockets):
        expected = [("message.new", "one")]
        for sent, body in enumerate(later):
            if sent == n:
                expected.append(("message.ack", body))
            expected.append(("message.new", body))
        assert await _next_frames(socket, len(expected)) == expected
    assert await _stored_count(3 + lanes) == 3 + lanes


@pytest.mark.django_db(transaction=True)
async def test_a_batch_whose_delivery_was_cancelled_does_not_stop_the_next(
    connect, alice, bob, monkeypatch
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    publish = fanout.publish
    calls = []

    async def cancelled_once(events, routes):
        calls.append(events)
        if len(calls) == 1:
            raise asyncio.CancelledError
        await publish(events, routes)

    monkeypatch.setattr(fanout, "publish", cancelled_once)

    first = await alice_socket.request(send_frame("lost push", "c-1", to="bob"), "message.ack")
    second = await alice_socket.request(send_frame("still told", "c-2", to="bob"), "message.ack")

    pushed = await bob_socket.recv_type("message.new")
    assert pushed["message"]["id"] == second["message"]["id"]
    # The push the cancelled delivery missed is healed by sync, as any missed push.
    assert pushed["prev_seq"] == first["message"]["seq"]


@pytest.mark.django_db(transaction=True)
async def test_sockets_of_this_process_are_told_without_the_channel_layer(
    connect, alice, bob, monkeypatch
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    layer = get_channel_layer()

    async def layer_down(*args, **kwargs):
        raise ConnectionError("channel layer down")

    monkeypatch.setattr(layer, "group_send", layer_down)
    monkeypatch.setattr(layer, "send", layer_down)
    ack = await alice_socket.request(send_frame("still live", "c-1", to="bob"), "message.ack")
    pushed = await bob_socket.recv_type("message.new")
    assert pushed["message"] == ack["message"]
    assert (await alice_socket.recv_type("message.new"))["message"]["id"] == ack["message"]["id"]


@pytest.mark.django_db(transaction=True)
async def test_a_group_member_added_meanwhile_is_told_of_the_next_message(
    connect, alice, bob, carol, make_user
):
    dave = await database_sync_to_async(make_user)(username="dave")
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol]
    )
    alice_socket = await connect(alice)
    dave_socket = await connect(dave)
    await database_sync_to_async(groups.group_add)(
        actor=alice, conversation_id=group.pk, usernames=["dave"]
    )
    await dave_socket.recv_type("conversation.updated")
    await alice_socket.request(
        send_frame("welcome dave", "c-1", conversation=group.pk), "message.ack"
    )
    pushed = await dave_socket.recv_type("message.new")
    assert pushed["message"]["body"] == "welcome dave"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_kept_connection_the_database_dropped_costs_no_send(connect, alice, bob):
    socket = await connect(alice)
    await socket.request(send_frame("first", "c-1", to="bob"), "message.ack")
    kept_pid = await sync_to_async(
        lambda: connection.connection.info.backend_pid,
        thread_sensitive=False,
        executor=sending._LANES[0],
    )()

    def drop_it() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [kept_pid])
            # The backend exits a moment after the call returns: the send comes after that.
            for _ in range(250):
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [kept_pid])
                if cursor.fetchone() is None:
                    break
                time.sleep(0.02)

    await database_sync_to_async(drop_it)()
    ack = await socket.request(send_frame("second", "c-2", to="bob"), "message.ack")
    assert ack["message"]["body"] == "second"
    assert await database_sync_to_async(Message.objects.count)() == 2


@pytest.mark.django_db(transaction=True)
def test_a_batch_stores_bodies_and_client_ids_exactly_whatever_they_hold(make_user):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    tricky = [
        'say "hi"',
        "back\\slash \\\\ and \\n",
        "{braces, commas}",
        "NULL",
        "it's; DROP TABLE x; --",
        "ünïcödé ✓ 🎉",
        "  spaced  \ttab",
        '{"a":[1,"\\"b"]}',
    ]
    requests = [
        SendRequest(alice, body, f"c{index}-{body[:20]}", to="bob")
        for index, body in enumerate(tricky)
    ]

    outcomes, _ = messages_send_many(requests)
    retries, _ = messages_send_many(requests)

    assert [outcome.error for outcome in outcomes] == [None] * len(tricky)
    stored = dict(Message.objects.filter(sender=alice).values_list("client_id", "body"))
    assert stored == {request.client_id: request.body for request in requests}
    # Each retry finds its message by its client_id: nothing stored twice.
    assert [outcome.result.created for outcome in retries] == [False] * len(tricky)
    assert [outcome.result.message.pk for outcome in retries] == [
        outcome.result.message.pk for outcome in outcomes
    ]
    assert Message.objects.filter(sender=alice).count() == len(tricky)
    assert Conversation.objects.filter(memberships__user=bob).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_client_id_is_each_senders_own_within_one_batch(make_user):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    make_user(username="carol")
    first, _ = messages_send_many([SendRequest(alice, "from alice", "same", to="bob")])

    # Alice retries her send; Bob, in the same batch, uses the same client_id for a new one,
    # and Alice starts another conversation with an id Bob used nowhere.
    outcomes, _ = messages_send_many(
        [
            SendRequest(alice, "from alice", "same", to="bob"),
            SendRequest(bob, "from bob", "same", to="alice"),
            SendRequest(alice, "to carol", "other", to="carol"),
        ]
    )

    retry, bobs, to_carol = (outcome.result for outcome in outcomes)
    assert not retry.created and retry.message.pk == first[0].result.message.pk
    assert bobs.created and bobs.message.body == "from bob"
    assert to_carol.created and to_carol.message.body == "to carol"
    assert sorted(Message.objects.values_list("body", flat=True)) == [
        "from alice",
        "from bob",
        "to carol",
    ]
