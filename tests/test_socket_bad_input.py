"""Every malformed frame gets an `error` frame and the socket stays usable."""

import pytest
from channels.db import database_sync_to_async

from messaging.models import Message
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)

BAD_JSON = [
    "not json",
    "[1, 2]",
    '"a string"',
    "42",
    "null",
    '{"type": "sync", "after": NaN}',
    '{"type": "sync", "after": Infinity}',
    '{"type": "sync", "after": 1e400}',
    '{"type": "sync", "after": ' + "9" * 10_000 + "}",
    '{"type": "sync", "after": 99999999999999999999}',
    "[" * 20_000 + "]" * 20_000,
    '{"type": "ping"',
]


async def assert_still_open(client):
    pong = await client.request({"type": "ping"}, "pong")
    assert pong["last_seq"] >= 0


@pytest.mark.parametrize("text", BAD_JSON, ids=range(len(BAD_JSON)))
async def test_not_one_json_object_is_bad_json(connect, alice, text):
    client = await connect(alice)
    await client.send_text(text)
    error = await client.recv()
    assert error["type"] == "error"
    assert error["code"] == "bad_json", error
    assert error["detail"]
    await assert_still_open(client)


async def test_binary_frame_is_bad_json(connect, alice):
    client = await connect(alice)
    await client.communicator.send_to(bytes_data=b'{"type": "ping"}')
    error = await client.recv()
    assert error["code"] == "bad_json"
    await assert_still_open(client)


BAD_FRAMES = [
    {"body": "no type"},
    {"type": 5},
    {"type": "message.send", "body": "x", "client_id": "c"},
    {"type": "message.send", "to": "bob", "client_id": "c"},
    {"type": "message.send", "to": "bob", "body": "x"},
    {"type": "message.send", "to": True, "body": "x", "client_id": "c"},
    {"type": "message.send", "to": 5, "body": "x", "client_id": "c"},
    {"type": "message.send", "conversation": "12", "body": "x", "client_id": "c"},
    {"type": "message.send", "conversation": True, "body": "x", "client_id": "c"},
    {"type": "message.send", "conversation": 1.5, "body": "x", "client_id": "c"},
    {"type": "message.send", "to": "bob", "conversation": 1, "body": "x", "client_id": "c"},
    {"type": "message.send", "to": "bob", "body": 7, "client_id": "c"},
    {"type": "message.send", "to": "bob", "body": "x", "client_id": ""},
    {"type": "message.send", "to": "bob", "body": "x", "client_id": "c" * 65},
    {"type": "message.send", "to": "bob", "body": "x", "client_id": 12},
    {"type": "message.send", "to": "bob", "body": "nul \u0000 byte", "client_id": "c"},
    {"type": "sync"},
    {"type": "sync", "after": "5"},
    {"type": "sync", "after": -1},
    {"type": "sync", "after": False},
    {"type": "read", "conversation": 1},
    {"type": "read", "conversation": 1, "up_to": None},
    {"type": "typing"},
    {"type": "message.edit", "id": 1},
    {"type": "message.edit", "id": "1", "body": "x"},
    {"type": "message.delete"},
    {"type": "message.delete", "id": [1]},
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=range(len(BAD_FRAMES)))
async def test_missing_or_mistyped_fields_are_bad_frame(connect, alice, bob, frame):
    client = await connect(alice)
    await client.send(frame)
    error = await client.recv()
    assert error["type"] == "error"
    assert error["code"] == "bad_frame", error
    await assert_still_open(client)
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_lone_surrogate_in_body_is_bad_frame_and_echoes_client_id(connect, alice, bob):
    client = await connect(alice)
    await client.send_text(
        '{"type": "message.send", "to": "bob", "body": "half \\ud800", "client_id": "c-9"}'
    )
    error = await client.recv()
    assert error["code"] == "bad_frame"
    assert error["client_id"] == "c-9"
    await assert_still_open(client)
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_unknown_type(connect, alice):
    client = await connect(alice)
    error = await client.request({"type": "message.explode"}, "error")
    assert error["code"] == "unknown_type"
    await assert_still_open(client)


@pytest.mark.parametrize("body", ["", "   ", "\n\t \u3000\u00a0"])
async def test_blank_body_is_empty(connect, alice, bob, body):
    client = await connect(alice)
    error = await client.request(send_frame(body, "c-1", to="bob"), "error")
    assert error["code"] == "empty"
    assert error["client_id"] == "c-1"
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_body_over_the_limit_is_too_long_counted_in_code_points(connect, alice, bob):
    client = await connect(alice)
    error = await client.request(send_frame("x" * 4001, "c-1", to="bob"), "error")
    assert error["code"] == "too_long"
    # 4000 astral characters are 8000 UTF-16 units but exactly the limit.
    ack = await client.request(send_frame("😀" * 4000, "c-2", to="bob"), "message.ack")
    assert len(ack["message"]["body"]) == 4000


async def test_huge_frame_is_refused_without_closing(connect, alice, bob):
    client = await connect(alice)
    error = await client.request(send_frame("y" * 200_000, "c-1", to="bob"), "error")
    assert error["code"] == "too_long"
    await assert_still_open(client)


async def test_extra_fields_are_ignored(connect, alice, bob):
    client = await connect(alice)
    frame = send_frame("hello", "c-1", to="bob") | {"mood": "happy"}
    ack = await client.request(frame, "message.ack")
    assert ack["message"]["body"] == "hello"
