"""The changes to daphne (chatsite/daphne_patches.py) still hold on the daphne we run.

These fail when a daphne, autobahn or Twisted release moves what the patches rely on.
"""

import asyncio
import inspect
import json
import re
import urllib.request

import pytest
from channels.db import database_sync_to_async

from chatsite.daphne_patches import patch_daphne, unsent_bytes
from messaging.delivery.light_queue import LightQueue
from tests.abuse import _open_never_reading, prepare
from tests.live import Daphne, LiveClient, serving, wait_closed


def test_the_internals_the_patches_use_are_there():
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import abstract, tcp

    patch_daphne()
    assert WebSocketProtocol._chat_patched
    for name in ("serverClose", "serverSend", "sendCloseFrame", "STATE_OPEN"):
        assert hasattr(WebSocketProtocol, name), name
    from daphne.http_protocol import WebRequest
    from daphne.server import Server
    from twisted.web.http import HTTPChannel

    # The socket queue's replacement mirrors daphne's create_application and what it keeps.
    assert Server.create_application.__name__ == "create_application"
    assert hasattr(Server, "handle_reply")
    # What an open socket lets go of: the upgraded request, autobahn's handshake copy.
    assert hasattr(WebRequest, "process") and hasattr(WebSocketProtocol, "onOpen")
    assert isinstance(HTTPChannel().requests, list)
    assert issubclass(tcp.Connection, abstract.FileDescriptor)
    assert abstract.FileDescriptor.dataBuffer == b""
    assert abstract.FileDescriptor.offset == 0
    # Taking connections by the gate's room: a listening port's turn and how it stops.
    for name in ("doRead", "stopReading", "startReading"):
        assert hasattr(tcp.Port, name), name
    assert "self.numberAccepts" in inspect.getsource(tcp.Port.doRead)
    assert "listen_success" in vars(Server)
    assert hasattr(HTTPChannel, "connectionLost")


def test_unsent_bytes_counts_what_a_transport_holds():
    from twisted.internet import abstract

    transport = abstract.FileDescriptor()
    transport.connected = True
    transport.startWriting = lambda: None
    transport.write(b"x" * 1000)
    transport.write(b"y" * 500)
    assert unsent_bytes(transport) == 1500
    transport.dataBuffer, transport.offset, transport._tempDataLen = b"z" * 800, 300, 0
    assert unsent_bytes(transport) == 500


async def test_a_sockets_frames_reach_the_application_in_order_and_none_is_lost():
    queue = LightQueue()
    queue.put_nowait({"n": 1})
    queue.put_nowait({"n": 2})
    assert [await queue.get(), await queue.get()] == [{"n": 1}, {"n": 2}]
    # A read cancelled while waiting (the application stopping) takes no frame with it.
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    queue.put_nowait({"n": 3})
    assert await queue.get() == {"n": 3}
    # A frame that arrives while the application waits is handed to it at once.
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait({"n": 4})
    assert await waiting == {"n": 4}
    assert queue.empty() and queue.items is None and queue.getters is None


def test_a_channel_buffer_its_socket_does_not_empty_keeps_only_the_newest():
    from messaging.delivery.layer import ChatRedisChannelLayer

    layer = ChatRedisChannelLayer(hosts=["redis://127.0.0.1:6379/10"], capacity=3)
    queue = layer.receive_buffer["specific.x!y"]
    assert isinstance(queue, LightQueue) and queue.empty()
    for n in range(5):
        queue.put_nowait(n)
    assert queue.full() and [queue.get_nowait() for _ in range(3)] == [2, 3, 4]
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


def closed_for(server: Daphne, reason: str) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(
        rf'chat_sockets_closed_for_abuse_total{{reason="{reason}"}} ([0-9.e+]+)', text
    )
    return float(match[1]) if match else 0.0


@pytest.fixture
def small_buffer_server(transactional_db, tmp_path):
    env = {"CHAT_SOCKET_SEND_BUFFER": str(64 * 1024), "CHAT_ABUSE_CLOSE_AFTER": "3"}
    with serving(tmp_path, env=env) as server:
        yield server


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_client_that_never_reads_is_closed_once_its_send_buffer_passes_the_bound(
    small_buffer_server,
):
    prepared = await database_sync_to_async(prepare)(prefix="buffer")
    writer = await _open_never_reading(
        "127.0.0.1", small_buffer_server.port, prepared.attacker_token
    )
    sync = {"type": "sync", "after": 0}
    from tests.abuse import _masked_frame

    writer.write(_masked_frame(json.dumps(sync)) * 40)
    await writer.drain()
    deadline = asyncio.get_running_loop().time() + 15
    while closed_for(small_buffer_server, "send_buffer") < 1:
        assert asyncio.get_running_loop().time() < deadline, "the socket was never closed"
        await asyncio.sleep(0.2)
    writer.transport.abort()
    # A client that reads what it asked for is never closed, however large the pages.
    reader = await LiveClient(small_buffer_server.ws_url, prepared.attacker_token).open()
    for _ in range(10):
        page = await reader.request(sync, "sync.result")
        assert page["messages"]
    await reader.close()
    assert closed_for(small_buffer_server, "send_buffer") == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_flooding_client_gets_the_1008_close_code_through_daphne(
    small_buffer_server, alice
):
    from messaging.domain.tokens import token_issue

    token = await database_sync_to_async(token_issue)(user=alice)
    client = await LiveClient(small_buffer_server.ws_url, token).open()
    for _ in range(5):
        await client.ws.send("{not json")
    assert await wait_closed(client) == 1008


def test_autobahns_options_are_pretty_printed_only_for_a_debug_line_written():
    import inspect
    from pprint import pformat as pretty

    from autobahn.websocket import protocol

    patch_daphne()
    # The call the patch makes lazy is still where autobahn makes it, at every connection.
    assert "pformat(configAttrLog)" in inspect.getsource(
        protocol.WebSocketProtocol._connectionMade
    )
    options = [
        ("openHandshakeTimeout", 5, "WebSocketServerFactory"),
        ("utf8validateIncoming", 1, "X"),
    ]
    logged = protocol.pformat(options)
    assert not isinstance(logged, str)
    assert f"\n{logged}" == f"\n{pretty(options)}" and repr(logged) == pretty(options)
    # Anything else is formatted at once, as before (Timings.__str__ returns it).
    timings = protocol.Timings()
    timings.track("x")
    assert str(timings) == pretty(timings._timings)


def test_a_port_on_twisteds_backlog_listens_deeper_and_one_an_endpoint_set_is_kept(settings):
    from daphne.server import Server

    from messaging.realtime.accept_pause import LISTENING

    patch_daphne()
    settings.CHAT_LISTEN_BACKLOG = 512

    class Socket:
        def __init__(self) -> None:
            self.backlogs: list[int] = []

        def listen(self, backlog: int) -> None:
            self.backlogs.append(backlog)

    class Port:
        def __init__(self, backlog: int) -> None:
            self.backlog, self.socket = backlog, Socket()

        def doRead(self) -> None: ...

        def stopReading(self) -> None: ...

        def startReading(self) -> None: ...

    daphne_default, endpoint_set = Port(50), Port(16)
    server = Server.__new__(Server)
    server.listening_addresses = []
    try:
        Server.listen_success(server, daphne_default)
        Server.listen_success(server, endpoint_set)
        assert daphne_default.socket.backlogs == [512]
        assert endpoint_set.socket.backlogs == []
        assert {daphne_default, endpoint_set} <= set(LISTENING.ports)
    finally:
        for port in (daphne_default, endpoint_set):
            if port in LISTENING.ports:
                LISTENING.ports.remove(port)
