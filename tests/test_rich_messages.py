"""Replies, reactions and mentions over the socket, and wherever messages are shown."""

import pytest
from channels.db import database_sync_to_async

from messaging.domain import blocks, message_changes
from messaging.models import Reaction
from tests.factories import UserFactory
from tests.helpers import api, send_frame
from tests.test_groups import make_group

pytestmark = pytest.mark.django_db(transaction=True)


def reply_frame(body: str, client_id: str, reply_to: int, **where) -> dict:
    return {**send_frame(body, client_id, **where), "reply_to": reply_to}


async def chat(connect, alice, bob):
    """Open Alice's and Bob's sockets and have Alice write first; return both and her message."""
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    ack = await alice_socket.request(send_frame("lunch?", "c-1", to="bob"), "message.ack")
    await alice_socket.recv_type("message.new")  # her own copy
    await bob_socket.recv_type("message.new")
    return alice_socket, bob_socket, ack["message"]


async def test_a_plain_message_shows_no_reply_reactions_files_or_mentions(connect, alice, bob):
    _, _, message = await chat(connect, alice, bob)
    assert message["reply_to"] is None
    assert message["reactions"] == []
    assert message["attachments"] == []
    assert message["mentions"] == []


async def test_a_reply_quotes_its_message_everywhere(connect, alice, bob):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    conversation = first["conversation"]
    ack = await bob_socket.request(
        reply_frame("yes, noon", "r-1", first["id"], conversation=conversation), "message.ack"
    )
    quote = {
        "id": first["id"],
        "sender": {"id": alice.pk, "username": "alice"},
        "body": "lunch?",
        "deleted": False,
    }
    assert ack["message"]["reply_to"] == quote
    pushed = await alice_socket.recv_type("message.new")
    assert pushed["message"]["reply_to"] == quote

    synced = await alice_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert synced["messages"][-1]["reply_to"] == quote
    history = await database_sync_to_async(
        lambda: api(alice).get(f"/api/conversations/{conversation}/messages/").json()
    )()
    assert history["messages"][-1]["reply_to"] == quote
    inbox = await database_sync_to_async(lambda: api(alice).get("/api/conversations/").json())()
    assert inbox["conversations"][0]["last_message"]["reply_to"] == quote


async def test_a_quote_shows_at_most_200_characters(connect, alice, bob):
    alice_socket = await connect(alice)
    long = "x" * 250
    first = await alice_socket.request(send_frame(long, "c-long", to="bob"), "message.ack")
    ack = await alice_socket.request(
        reply_frame("me again", "r-1", first["message"]["id"], to="bob"), "message.ack"
    )
    assert ack["message"]["reply_to"]["body"] == "x" * 200


async def test_a_reply_to_a_message_deleted_later_shows_it_deleted(connect, alice, bob):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.request(
        reply_frame("yes", "r-1", first["id"], conversation=first["conversation"]),
        "message.ack",
    )
    await alice_socket.send({"type": "message.delete", "id": first["id"]})
    await bob_socket.recv_type("message.updated")
    synced = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    reply = synced["messages"][0]
    assert reply["body"] == "yes"
    assert reply["reply_to"]["id"] == first["id"]
    assert reply["reply_to"]["deleted"] is True and reply["reply_to"]["body"] == ""


async def test_a_reply_to_a_message_staff_hid_shows_it_deleted(connect, alice, bob):
    _, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.request(
        reply_frame("yes", "r-1", first["id"], conversation=first["conversation"]),
        "message.ack",
    )
    moderator = await database_sync_to_async(UserFactory)(username="mod", is_staff=True)
    await database_sync_to_async(message_changes.message_hide)(
        moderator=moderator, message_id=first["id"]
    )
    await bob_socket.recv_type("message.updated")
    synced = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    reply = next(m for m in synced["messages"] if m["body"] == "yes")
    assert reply["reply_to"]["id"] == first["id"]
    # Nobody reads what staff hid through a quote of it.
    assert reply["reply_to"]["deleted"] is True and reply["reply_to"]["body"] == ""


async def test_a_reply_must_answer_a_live_message_of_the_same_conversation(
    connect, alice, bob, carol
):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    carol_socket = await connect(carol)
    elsewhere = await carol_socket.request(send_frame("hi", "c-x", to="alice"), "message.ack")
    refused = await bob_socket.request(
        reply_frame("sneaky", "r-1", elsewhere["message"]["id"], to="alice"), "error"
    )
    assert refused["code"] == "not_found" and refused["client_id"] == "r-1"
    unknown = await bob_socket.request(reply_frame("?", "r-2", 10**9, to="alice"), "error")
    assert unknown["code"] == "not_found"
    # A first message to someone cannot answer anything: there is no conversation yet.
    opening = await carol_socket.request(
        reply_frame("hi bob", "r-3", first["id"], to="bob"), "error"
    )
    assert opening["code"] == "not_found"
    await alice_socket.request({"type": "message.delete", "id": first["id"]}, "message.updated")
    deleted = await bob_socket.request(
        reply_frame("late", "r-4", first["id"], to="alice"), "error"
    )
    assert deleted["code"] == "not_found"
    synced = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert [m["body"] for m in synced["messages"]] == [""]  # only the deleted first message


async def test_a_reply_retried_is_acked_once(connect, alice, bob):
    _, bob_socket, first = await chat(connect, alice, bob)
    frame = reply_frame("yes", "r-1", first["id"], to="alice")
    once = await bob_socket.request(frame, "message.ack")
    again = await bob_socket.request(frame, "message.ack")
    assert again["message"]["id"] == once["message"]["id"]
    assert again["message"]["reply_to"]["id"] == first["id"]


async def test_reactions_are_changes_of_the_message(connect, alice, bob):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.send({"type": "reaction.add", "id": first["id"], "emoji": "👍"})
    added = await alice_socket.recv_type("message.updated")
    assert added["message"]["id"] == first["id"]
    assert added["message"]["reactions"] == [{"emoji": "👍", "count": 1, "users": [bob.pk]}]
    assert added["message"]["seq"] > first["seq"]
    assert added["prev_seq"] == first["seq"]
    mine = await bob_socket.recv_type("message.updated")
    assert mine["message"]["reactions"] == added["message"]["reactions"]

    await alice_socket.send({"type": "reaction.add", "id": first["id"], "emoji": "❤️"})
    await alice_socket.send({"type": "reaction.add", "id": first["id"], "emoji": "👍"})
    await alice_socket.recv_type("message.updated")
    both = await alice_socket.recv_type("message.updated")
    assert both["message"]["reactions"] == [
        {"emoji": "👍", "count": 2, "users": [bob.pk, alice.pk]},
        {"emoji": "❤️", "count": 1, "users": [alice.pk]},
    ]
    await bob_socket.send({"type": "reaction.remove", "id": first["id"], "emoji": "👍"})
    removed = await alice_socket.recv_type("message.updated")
    # In the order each was first used by those who still have it.
    assert removed["message"]["reactions"] == [
        {"emoji": "❤️", "count": 1, "users": [alice.pk]},
        {"emoji": "👍", "count": 1, "users": [alice.pk]},
    ]

    synced = await bob_socket.request({"type": "sync", "after": first["seq"]}, "sync.result")
    assert [m["id"] for m in synced["messages"]] == [first["id"]]
    assert synced["messages"][0]["reactions"] == removed["message"]["reactions"]


async def test_reacting_twice_or_removing_what_is_not_there_changes_nothing(connect, alice, bob):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.send({"type": "reaction.add", "id": first["id"], "emoji": "🎉"})
    changed = await alice_socket.recv_type("message.updated")
    await bob_socket.send({"type": "reaction.add", "id": first["id"], "emoji": "🎉"})
    await bob_socket.send({"type": "reaction.remove", "id": first["id"], "emoji": "🙂"})
    pong = await bob_socket.request({"type": "ping"}, "pong")
    assert pong["last_seq"] == changed["message"]["seq"]  # no stamp was drawn
    assert await database_sync_to_async(Reaction.objects.count)() == 1


async def test_a_reaction_must_be_one_emoji(connect, alice, bob):
    _, bob_socket, first = await chat(connect, alice, bob)
    for emoji in ["👍👍", "ok", ":)", "👍 ", ""]:
        refused = await bob_socket.request(
            {"type": "reaction.add", "id": first["id"], "emoji": emoji}, "error"
        )
        assert refused["code"] == "bad_frame", emoji
    for emoji in ["👍🏽", "👨‍👩‍👧", "🇫🇷"]:
        await bob_socket.request(
            {"type": "reaction.add", "id": first["id"], "emoji": emoji}, "message.updated"
        )


async def test_at_most_twenty_different_emoji_on_a_message(connect, alice, bob):
    _, bob_socket, first = await chat(connect, alice, bob)
    emoji = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊"]
    emoji += ["😋", "😎", "😍", "😘", "🥰", "😗", "😙", "😚", "🙂", "🤗"]
    for one in emoji:
        await bob_socket.request(
            {"type": "reaction.add", "id": first["id"], "emoji": one}, "message.updated"
        )
    refused = await bob_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "🤩"}, "error"
    )
    assert refused["code"] == "forbidden"
    # One already there may still be given by someone else.
    alice_socket = await connect(alice)
    await alice_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "😀"}, "message.updated"
    )


async def test_reacting_follows_the_rules_of_writing(connect, alice, bob, carol):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    carol_socket = await connect(carol)
    stranger = await carol_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "👍"}, "error"
    )
    assert stranger["code"] == "not_found"
    await database_sync_to_async(blocks.block_create)(blocker=bob, username="alice")
    blocked = await bob_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "👍"}, "error"
    )
    assert blocked["code"] == "cannot_send"
    await database_sync_to_async(blocks.block_remove)(blocker=bob, username="alice")
    await alice_socket.request({"type": "message.delete", "id": first["id"]}, "message.updated")
    deleted = await bob_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "👍"}, "error"
    )
    assert deleted["code"] == "not_found"


async def test_reactions_are_rate_limited_like_any_frame(connect, alice, bob, settings):
    settings.CHAT_REACTION_RATE = "2/3600s"  # fixed windows: an hour's is not crossed here
    _, bob_socket, first = await chat(connect, alice, bob)
    for emoji in ["👍", "🎉"]:
        await bob_socket.request(
            {"type": "reaction.add", "id": first["id"], "emoji": emoji}, "message.updated"
        )
    refused = await bob_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "😀"}, "error"
    )
    assert refused["code"] == "rate_limited" and refused["retry_after"] > 0


@pytest.fixture
def trio(alice, bob, carol):
    return make_group(alice, "bob", "carol")


async def test_a_group_message_names_its_members(connect, alice, bob, carol, trio):
    alice_socket = await connect(alice)
    ack = await alice_socket.request(
        send_frame(
            "@bob and @Carol. and not @nobody or mail@bob.example", "m-1", conversation=trio["id"]
        ),
        "message.ack",
    )
    assert ack["message"]["mentions"] == [bob.pk, carol.pk]
    me = await alice_socket.request(
        send_frame("note to @alice", "m-2", conversation=trio["id"]), "message.ack"
    )
    assert me["message"]["mentions"] == []


async def test_the_inbox_counts_unread_mentions(connect, alice, bob, carol, trio):
    alice_socket = await connect(alice)
    for index, body in enumerate(["hi @bob", "@carol too", "and @bob again"]):
        await alice_socket.request(
            send_frame(body, f"m-{index}", conversation=trio["id"]), "message.ack"
        )

    def inbox_of(user) -> dict:
        return api(user).get("/api/conversations/").json()["conversations"][0]

    bob_inbox = await database_sync_to_async(inbox_of)(bob)
    assert bob_inbox["mentions"] == 2 and bob_inbox["unread"] == 3
    assert (await database_sync_to_async(inbox_of)(carol))["mentions"] == 1
    assert (await database_sync_to_async(inbox_of)(alice))["mentions"] == 0
    bob_socket = await connect(bob)
    last = bob_inbox["last_message"]["id"]
    await bob_socket.send({"type": "read", "conversation": trio["id"], "up_to": last})
    await bob_socket.request({"type": "ping"}, "pong")
    assert (await database_sync_to_async(inbox_of)(bob))["mentions"] == 0


async def test_an_edit_renames_who_is_mentioned(connect, alice, bob, carol, trio):
    alice_socket = await connect(alice)
    ack = await alice_socket.request(
        send_frame("ask @bob", "m-1", conversation=trio["id"]), "message.ack"
    )
    await alice_socket.send({"type": "message.edit", "id": ack["message"]["id"], "body": "@carol"})
    edited = await alice_socket.recv_type("message.updated")
    assert edited["message"]["mentions"] == [carol.pk]


async def test_a_direct_message_mentions_no_one(connect, alice, bob):
    alice_socket = await connect(alice)
    ack = await alice_socket.request(send_frame("hey @bob", "m-1", to="bob"), "message.ack")
    assert ack["message"]["mentions"] == []


async def test_search_hits_show_their_quote_and_reactions(connect, alice, bob):
    _, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.request(
        reply_frame("pizza please", "r-1", first["id"], to="alice"), "message.ack"
    )
    found = await database_sync_to_async(
        lambda: api(alice).get("/api/search/", {"q": "pizza"}).json()
    )()
    hit = found["messages"][0]
    assert hit["body"] == "pizza please" and hit["reply_to"]["id"] == first["id"]
    assert hit["reactions"] == [] and hit["attachments"] == []


async def test_files_that_are_not_the_senders_unsent_uploads_are_not_found(connect, alice, bob):
    alice_socket = await connect(alice)
    frame = {**send_frame("", "f-1", to="bob"), "attachments": ["no-such-upload"]}
    refused = await alice_socket.request(frame, "error")
    assert refused["code"] == "not_found" and refused["client_id"] == "f-1"
    twice = {**send_frame("x", "f-2", to="bob"), "attachments": ["a", "a"]}
    assert (await alice_socket.request(twice, "error"))["code"] == "bad_frame"
    many = {**send_frame("x", "f-3", to="bob"), "attachments": [str(n) for n in range(11)]}
    assert (await alice_socket.request(many, "error"))["code"] == "bad_frame"
    synced = await alice_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert synced["messages"] == []


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def photo_upload(user, name: str = "photo.png"):
    """Upload a small PNG as the user; return the upload's id."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from messaging.domain import uploads
    from tests.test_uploads import png

    return uploads.store_upload(user, SimpleUploadedFile(name, png(), "image/png")).pk


async def test_a_photo_is_sent_without_words_and_its_members_may_download_it(
    connect, alice, bob, carol, media
):
    upload = await database_sync_to_async(photo_upload)(alice)
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    frame = {**send_frame("", "f-1", to="bob"), "attachments": [upload]}
    ack = await alice_socket.request(frame, "message.ack")
    [attachment] = ack["message"]["attachments"]
    assert attachment["id"] == upload and attachment["name"] == "photo.png"
    assert attachment["content_type"] == "image/png"
    assert (attachment["width"], attachment["height"]) == (30, 30)
    assert attachment["thumbnail_url"] is not None
    pushed = await bob_socket.recv_type("message.new")
    assert pushed["message"]["attachments"] == [attachment]

    def fetch(user):
        return api(user).get(attachment["url"])

    assert (await database_sync_to_async(fetch)(bob)).status_code == 200
    assert (await database_sync_to_async(fetch)(carol)).status_code == 404
    again = await alice_socket.request(frame, "message.ack")  # a retry: the same message
    assert again["message"]["id"] == ack["message"]["id"]
    assert again["message"]["attachments"] == [attachment]
    reused = {**send_frame("once more", "f-2", to="bob"), "attachments": [upload]}
    assert (await alice_socket.request(reused, "error"))["code"] == "not_found"
    synced = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert synced["messages"][0]["attachments"] == [attachment]


async def test_someone_elses_upload_cannot_be_sent(connect, alice, bob, media):
    upload = await database_sync_to_async(photo_upload)(bob)
    alice_socket = await connect(alice)
    frame = {**send_frame("mine now", "f-1", to="bob"), "attachments": [upload]}
    assert (await alice_socket.request(frame, "error"))["code"] == "not_found"


async def test_a_deleted_messages_files_are_gone_from_it(connect, alice, bob, media):
    upload = await database_sync_to_async(photo_upload)(alice)
    alice_socket = await connect(alice)
    frame = {**send_frame("oops", "f-1", to="bob"), "attachments": [upload]}
    ack = await alice_socket.request(frame, "message.ack")
    url = ack["message"]["attachments"][0]["url"]
    await alice_socket.send({"type": "message.delete", "id": ack["message"]["id"]})
    deleted = await alice_socket.recv_type("message.updated")
    assert deleted["message"]["attachments"] == []
    status = await database_sync_to_async(lambda: api(bob).get(url).status_code)()
    assert status == 404


async def test_an_emoji_counts_once_however_a_client_wrote_it(connect, alice, bob):
    alice_socket, bob_socket, first = await chat(connect, alice, bob)
    await bob_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "\u2764"}, "message.updated"
    )
    await alice_socket.recv_type("message.updated")  # Bob's
    both = await alice_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "\u2764\ufe0f"}, "message.updated"
    )
    assert both["message"]["reactions"] == [
        {"emoji": "\u2764\ufe0f", "count": 2, "users": [bob.pk, alice.pk]}
    ]
    thumbs = await alice_socket.request(
        {"type": "reaction.add", "id": first["id"], "emoji": "👍\ufe0f"}, "message.updated"
    )
    assert thumbs["message"]["reactions"][1]["emoji"] == "👍"
