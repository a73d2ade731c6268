"""Group conversations over HTTP and the socket: create, rename, add, remove, leave."""

import json

import pytest
from channels.db import database_sync_to_async

from messaging.domain import groups
from tests.helpers import api, send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def call(client, method, path, data=None):
    return getattr(client, method)(
        path, json.dumps(data) if data is not None else None, content_type="application/json"
    )


@pytest.fixture
def dave(make_user):
    return make_user(username="dave")


def make_group(creator, *others, title="trio") -> dict:
    response = call(
        api(creator), "post", "/api/conversations/", {"members": list(others), "title": title}
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_creating_a_group(alice, bob, carol):
    group = make_group(alice, "bob", "carol")
    assert group["kind"] == "group" and group["title"] == "trio"
    assert [m["username"] for m in group["members"]] == ["alice", "bob", "carol"]
    assert [c["id"] for c in api(carol).get("/api/conversations/").json()["conversations"]] == [
        group["id"]
    ]


def test_group_size_is_limited(alice, make_user, settings):
    settings.CHAT_MAX_GROUP_SIZE = 3
    for name in ("p1", "p2", "p3"):
        make_user(username=name)
    response = call(api(alice), "post", "/api/conversations/", {"members": ["p1", "p2", "p3"]})
    assert response.status_code == 400
    group = make_group(alice, "p1", "p2")
    refused = call(
        api(alice), "post", f"/api/conversations/{group['id']}/members/", {"members": ["p3"]}
    )
    assert refused.status_code == 403 and "at most 3" in refused.json()["detail"]


def test_rename_add_and_remove_over_http(alice, bob, carol, dave):
    group = make_group(alice, "bob", "carol")
    url = f"/api/conversations/{group['id']}/"
    renamed = call(api(bob), "patch", url, {"title": "weekend"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "weekend"
    added = call(api(carol), "post", url + "members/", {"members": ["dave"]})
    assert [m["username"] for m in added.json()["members"]] == ["alice", "bob", "carol", "dave"]
    unknown = call(api(carol), "post", url + "members/", {"members": ["ghost"]})
    assert unknown.status_code == 400 and "members" in unknown.json()["errors"]
    # Only the creator removes others; anyone may leave.
    assert call(api(bob), "delete", url + "members/dave/").status_code == 403
    assert call(api(alice), "delete", url + "members/dave/").status_code == 204
    assert call(api(carol), "delete", url + "members/carol/").status_code == 204
    assert api(carol).get(url).status_code == 404
    assert api(dave).get(url + "messages/").status_code == 404
    lines = [m["body"] for m in api(alice).get(url + "messages/").json()["messages"]]
    assert lines == [
        "alice created the group with bob, carol",
        'bob renamed the group to "weekend"',
        "carol added dave",
        "alice removed dave",
        "carol left",
    ]


def test_direct_conversations_have_no_members_to_change(alice, bob, carol):
    direct = call(api(alice), "post", "/api/conversations/", {"members": ["bob"]}).json()
    url = f"/api/conversations/{direct['id']}/members/"
    assert call(api(alice), "post", url, {"members": ["carol"]}).status_code == 403


def test_system_lines_do_not_count_as_unread(alice, bob, carol):
    group = make_group(alice, "bob", "carol")
    call(api(alice), "patch", f"/api/conversations/{group['id']}/", {"title": "new"})
    mine = api(bob).get("/api/conversations/").json()["conversations"][0]
    assert mine["unread"] == 0
    assert mine["last_message"]["kind"] == "system"


async def test_everything_of_a_direct_chat_works_in_a_group(connect, alice, bob, carol):
    group = await database_sync_to_async(make_group)(alice, "bob", "carol")
    sockets = {user.username: await connect(user) for user in (alice, bob, carol)}
    ack = await sockets["alice"].request(
        send_frame("hello all", "g-1", conversation=group["id"]), "message.ack"
    )
    for socket in sockets.values():
        pushed = await socket.recv_type("message.new")
        assert pushed["message"]["id"] == ack["message"]["id"]
    # Bob and Carol answer: only from then on do the others see their typing and reading.
    for name in ("bob", "carol"):
        await sockets[name].request(
            send_frame(f"hi from {name}", f"{name}-1", conversation=group["id"]), "message.ack"
        )
        for socket in sockets.values():
            await socket.recv_type("message.new")
    await sockets["bob"].send({"type": "typing", "conversation": group["id"]})
    for name in ("alice", "carol"):
        assert (await sockets[name].recv_type("typing"))["user"]["username"] == "bob"
    await sockets["carol"].send(
        {"type": "read", "conversation": group["id"], "up_to": ack["message"]["id"]}
    )
    for socket in sockets.values():
        assert (await socket.recv_type("read"))["user"]["username"] == "carol"
    await sockets["alice"].send(
        {"type": "message.edit", "id": ack["message"]["id"], "body": "hello everyone"}
    )
    for socket in sockets.values():
        assert (await socket.recv_type("message.updated"))["message"]["body"] == "hello everyone"
    retry = await sockets["alice"].request(
        send_frame("hello all", "g-1", conversation=group["id"]), "message.ack"
    )
    assert retry["message"]["id"] == ack["message"]["id"]


async def test_a_removed_member_stops_receiving_at_once(connect, alice, bob, carol):
    group = await database_sync_to_async(make_group)(alice, "bob", "carol")
    alice_socket = await connect(alice)
    carol_socket = await connect(carol)
    await database_sync_to_async(groups.group_remove)(
        actor=alice, conversation_id=group["id"], username="carol"
    )
    frames = {frame["type"]: frame for frame in [await carol_socket.recv() for _ in range(2)]}
    updated = frames["conversation.updated"]
    assert updated["change"]["kind"] == "removed"
    assert updated["change"]["users"] == [{"id": carol.pk, "username": "carol"}]
    assert "carol" not in [m["username"] for m in updated["conversation"]["members"]]
    assert frames["message.new"]["message"]["body"] == "alice removed carol"
    assert frames["message.new"]["message"]["kind"] == "system"

    await alice_socket.request(
        send_frame("carol is gone", "g-2", conversation=group["id"]), "message.ack"
    )
    assert await carol_socket.nothing()
    result = await carol_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert result["messages"] == []
    error = await carol_socket.request(
        send_frame("let me back", "c-1", conversation=group["id"]), "error"
    )
    assert error["code"] == "not_found"


async def test_an_added_member_gets_the_group_live(connect, alice, bob, carol, dave):
    group = await database_sync_to_async(make_group)(alice, "bob", "carol")
    dave_socket = await connect(dave)
    await database_sync_to_async(groups.group_add)(
        actor=bob, conversation_id=group["id"], usernames=["dave"]
    )
    updated = await dave_socket.recv_type("conversation.updated")
    assert updated["change"]["kind"] == "added"
    assert updated["conversation"]["id"] == group["id"]
    alice_socket = await connect(alice)
    await alice_socket.request(
        send_frame("welcome dave", "w-1", conversation=group["id"]), "message.ack"
    )
    pushed = await dave_socket.recv_type("message.new")
    assert pushed["message"]["body"] == "welcome dave"


async def test_a_new_group_is_announced_to_every_member(connect, alice, bob, carol):
    bob_socket = await connect(bob)
    group = await database_sync_to_async(make_group)(alice, "bob", "carol")
    frames = {frame["type"]: frame for frame in [await bob_socket.recv() for _ in range(2)]}
    assert frames["conversation.updated"]["change"]["kind"] == "created"
    assert frames["conversation.updated"]["conversation"]["id"] == group["id"]
    assert frames["message.new"]["message"]["body"] == "alice created the group with bob, carol"


def test_no_group_with_someone_who_blocks_you(alice, bob, carol):
    from messaging.domain import blocks

    blocks.block_create(blocker=carol, username="alice")
    response = call(api(alice), "post", "/api/conversations/", {"members": ["bob", "carol"]})
    assert response.status_code == 403 and response.json()["code"] == "cannot_send"


async def test_lines_about_the_group_cannot_be_edited_or_deleted(connect, alice, bob, carol):
    group = await database_sync_to_async(make_group)(alice, "bob", "carol")
    alice_socket = await connect(alice)
    result = await alice_socket.request({"type": "sync", "after": 0}, "sync.result")
    line = result["messages"][0]
    assert line["kind"] == "system" and line["conversation"] == group["id"]
    for frame in (
        {"type": "message.edit", "id": line["id"], "body": "bob was banned by staff"},
        {"type": "message.delete", "id": line["id"]},
    ):
        error = await alice_socket.request(frame, "error")
        assert error["code"] == "forbidden"
