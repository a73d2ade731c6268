"""Two real daphne processes on PostgreSQL and Redis: every frame reaches every socket."""

import pytest
from channels.db import database_sync_to_async

from messaging.domain import services
from tests.helpers import send_frame, token_for
from tests.live import Daphne, download, live_client, upload_over_http
from tests.test_uploads import png

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    # One folder of uploads for both, as two machines would share a bucket or an NFS mount.
    media = {"MEDIA_ROOT": str(tmp_path / "media")}
    servers = [Daphne(env=media, log_path=tmp_path / f"daphne{n}.log").start() for n in range(2)]
    yield servers
    for server in servers:
        server.stop()
    for n in range(2):
        log = (tmp_path / f"daphne{n}.log").read_text()
        assert "Traceback" not in log, log


def answer(user, conversation_id: int) -> None:
    services.message_send(
        sender=user, body="hello", client_id="answer", conversation_id=conversation_id
    )


async def test_a_message_crosses_processes_to_every_socket(two_servers, alice, bob, carol):
    first, second = two_servers
    alice_on_first = await live_client(first, alice)
    alice_on_second = await live_client(second, alice)
    bob_on_second = await live_client(second, bob)
    carol_on_first = await live_client(first, carol)
    try:
        ack = await alice_on_first.request(send_frame("across", "x-1", to="bob"), "message.ack")
        for client in (alice_on_first, alice_on_second, bob_on_second):
            pushed = await client.recv_type("message.new")
            assert pushed["message"] == ack["message"]

        conversation = ack["message"]["conversation"]
        # Bob answers: only from then on does Alice see his typing and reading.
        await bob_on_second.request(
            send_frame("back", "x-2", conversation=conversation), "message.ack"
        )
        await alice_on_first.recv_type("message.new")
        await bob_on_second.send({"type": "typing", "conversation": conversation})
        typing = await alice_on_first.recv_type("typing")
        assert typing["user"]["username"] == "bob"

        await bob_on_second.send(
            {"type": "read", "conversation": conversation, "up_to": ack["message"]["id"]}
        )
        for client in (alice_on_first, alice_on_second, bob_on_second):
            receipt = await client.recv_type("read")
            assert receipt["up_to"] == ack["message"]["id"]

        await alice_on_first.send({"type": "message.delete", "id": ack["message"]["id"]})
        for client in (alice_on_second, bob_on_second):
            updated = await client.recv_type("message.updated")
            assert updated["message"]["deleted"] is True

        with pytest.raises(TimeoutError):
            await carol_on_first.recv_type("message.new", timeout=0.5)
    finally:
        for client in (alice_on_first, alice_on_second, bob_on_second, carol_on_first):
            await client.close()


async def test_presence_crosses_processes(two_servers, alice, bob):
    first, second = two_servers
    alice_socket = await live_client(first, alice)
    ack = await alice_socket.request(send_frame("hi", "p-1", to="bob"), "message.ack")
    # Bob has answered: Alice may see him online.
    await database_sync_to_async(answer)(bob, ack["message"]["conversation"])
    bob_socket = await live_client(second, bob)
    assert bob_socket.ready["online"] == [{"id": alice.pk, "username": "alice"}]
    online = await alice_socket.recv_type("presence")
    assert online["user"]["username"] == "bob" and online["online"] is True
    await alice_socket.close()
    offline = await bob_socket.recv_type("presence")
    assert offline["user"]["username"] == "alice" and offline["online"] is False
    await bob_socket.close()


async def test_group_changes_reach_sockets_on_both_processes(two_servers, alice, bob, carol):
    from messaging.domain import groups

    first, second = two_servers
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol], title="two processes"
    )
    alice_socket = await live_client(first, alice)
    bob_socket = await live_client(second, bob)
    carol_socket = await live_client(second, carol)
    try:
        await database_sync_to_async(groups.group_remove)(
            actor=alice, conversation_id=group.pk, username="carol"
        )
        updated = await carol_socket.recv_type("conversation.updated")
        assert updated["change"]["kind"] == "removed"
        assert (await bob_socket.recv_type("conversation.updated"))["change"]["kind"] == "removed"

        ack = await alice_socket.request(
            send_frame("without carol", "t-1", conversation=group.pk), "message.ack"
        )
        pushed = await bob_socket.recv_type("message.new")
        assert pushed["message"]["id"] == ack["message"]["id"]
        with pytest.raises(TimeoutError):
            await carol_socket.recv_type("message.new", timeout=0.7)
    finally:
        for client in (alice_socket, bob_socket, carol_socket):
            await client.close()


async def test_replies_reactions_and_mentions_cross_processes(two_servers, alice, bob, carol):
    first, second = two_servers
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol]
    )
    alice_socket = await live_client(first, alice)
    bob_socket = await live_client(second, bob)
    try:
        ack = await alice_socket.request(
            send_frame("lunch, @bob?", "r-1", conversation=group.pk), "message.ack"
        )
        asked = ack["message"]
        assert asked["mentions"] == [bob.pk]
        await alice_socket.recv_type("message.new")  # her own copy
        pushed = await bob_socket.recv_type("message.new")
        assert pushed["message"] == asked
        reply = {**send_frame("yes", "r-2", conversation=group.pk), "reply_to": asked["id"]}
        answered = await bob_socket.request(reply, "message.ack")
        quoted = await alice_socket.recv_type("message.new")
        assert quoted["message"]["reply_to"]["id"] == asked["id"]
        assert quoted["message"] == answered["message"]
        await bob_socket.send({"type": "reaction.add", "id": asked["id"], "emoji": "👍"})
        reacted = await alice_socket.recv_type("message.updated")
        assert reacted["message"]["reactions"] == [{"emoji": "👍", "count": 1, "users": [bob.pk]}]
        assert reacted["prev_seq"] == answered["message"]["seq"]
    finally:
        for client in (alice_socket, bob_socket):
            await client.close()


async def test_files_reactions_edits_and_deletes_cross_processes_and_sync_catches_them_up(
    two_servers, alice, bob, carol
):
    first, second = two_servers
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol]
    )
    alice_token, bob_token = await token_for(alice), await token_for(bob)
    alice_socket = await live_client(first, alice)
    bob_socket = await live_client(second, bob)
    carol_socket = await live_client(second, carol)
    try:
        # Alice's photo goes up through the first process; Bob, on the second, gets it.
        upload = await database_sync_to_async(upload_over_http)(
            first, alice_token, "beach.png", png()
        )
        photo = {
            **send_frame("the beach", "p-1", conversation=group.pk),
            "attachments": [upload["id"]],
        }
        sent = (await alice_socket.request(photo, "message.ack"))["message"]
        await alice_socket.recv_type("message.new")  # her own copy
        [attachment] = sent["attachments"]
        assert attachment["name"] == "beach.png" and attachment["content_type"] == "image/png"
        pushed = await bob_socket.recv_type("message.new")
        assert pushed["message"] == sent
        carol_cursor = (await carol_socket.recv_type("message.new"))["message"]["seq"]
        # Carol goes away; what follows she learns by sync.
        await carol_socket.close()
        status, content_type, _ = await database_sync_to_async(download)(
            second, bob_token, attachment["url"]
        )
        assert (status, content_type) == (200, "image/png")

        reply = {**send_frame("lovely", "p-2", conversation=group.pk), "reply_to": sent["id"]}
        answered = (await bob_socket.request(reply, "message.ack"))["message"]
        assert (await alice_socket.recv_type("message.new"))["message"] == answered

        await bob_socket.send({"type": "reaction.add", "id": sent["id"], "emoji": "🌊"})
        added = await alice_socket.recv_type("message.updated")
        assert added["message"]["reactions"] == [{"emoji": "🌊", "count": 1, "users": [bob.pk]}]
        await bob_socket.send({"type": "reaction.remove", "id": sent["id"], "emoji": "🌊"})
        removed = await alice_socket.recv_type("message.updated")
        assert removed["message"]["reactions"] == []
        assert removed["message"]["seq"] > added["message"]["seq"]

        # Bob's own sockets got both changes of his reactions too.
        for _ in range(2):
            await bob_socket.recv_type("message.updated")
        await alice_socket.send({"type": "message.edit", "id": sent["id"], "body": "our beach"})
        edited = (await bob_socket.recv_type("message.updated"))["message"]
        assert edited["body"] == "our beach" and edited["attachments"] == [attachment]

        await alice_socket.send({"type": "message.delete", "id": sent["id"]})
        deleted = (await bob_socket.recv_type("message.updated"))["message"]
        assert deleted["deleted"] is True and deleted["attachments"] == []
        for server, token in ((first, alice_token), (second, bob_token)):
            status, _, _ = await database_sync_to_async(download)(server, token, attachment["url"])
            assert status == 404

        # Carol comes back on the other process and syncs from where she was.
        carol_socket = await live_client(first, carol)
        caught_up = await carol_socket.chat.sync(carol_cursor)
        latest = {message["id"]: message for message in caught_up}
        assert set(latest) == {sent["id"], answered["id"]}
        assert latest[sent["id"]]["deleted"] is True
        assert latest[sent["id"]]["attachments"] == [] and latest[sent["id"]]["body"] == ""
        assert latest[answered["id"]]["body"] == "lovely"
        assert latest[answered["id"]]["reply_to"]["id"] == sent["id"]
        assert latest[answered["id"]]["reply_to"]["deleted"] is True
    finally:
        for client in (alice_socket, bob_socket, carol_socket):
            await client.close()
