"""Socket frames compressed with permessage-deflate (chatsite/ws_deflate.py) when offered.

A phone syncing a page of messages downloads several times fewer bytes; what it reads is the
same; an idle socket holds no compressor; CHAT_WS_DEFLATE=0 turns it off.
"""

from __future__ import annotations

import asyncio
import zlib

import pytest
from autobahn.websocket.compress import PerMessageDeflateOffer
from channels.db import database_sync_to_async

from chatsite.ws_deflate import BoundedDeflate, accept_deflate
from messaging.client import ChatClient
from tests.live import serving

# What Chromium sends in Sec-WebSocket-Extensions.
BROWSER_OFFER = PerMessageDeflateOffer.parse({"client_max_window_bits": [True]})


def test_a_browsers_offer_is_accepted_without_context_takeover_and_with_small_windows():
    accept = accept_deflate([BROWSER_OFFER])
    assert accept.get_extension_string() == (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=12"
    )
    assert accept_deflate([]) is None


def test_the_compressor_is_dropped_once_a_message_is_through():
    deflate = BoundedDeflate.create_from_offer_accept(True, accept_deflate([BROWSER_OFFER]))
    frame = ('{"type": "message", "body": "see you at the station at nine"}' * 20).encode()
    deflate.start_compress_message()
    compressed = deflate.compress_message_data(frame) + deflate.end_compress_message()
    assert deflate._compressor is None, "an idle socket would keep zlib's state"
    # RFC 7692 7.2.2: the receiver appends the 4 bytes the sender stripped.
    assert zlib.decompressobj(-15).decompress(compressed + b"\x00\x00\xff\xff") == frame
    assert len(compressed) < len(frame) / 5


class CountingProxy:
    """A TCP relay in front of daphne that counts the bytes sent towards the client."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.to_client = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, client_in, client_out) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(reader, writer, count: bool) -> None:
            while data := await reader.read(65536):
                if count:
                    self.to_client += len(data)
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(
            pipe(client_in, server_out, False),
            pipe(server_in, client_out, True),
            return_exceptions=True,
        )


def chat_between(prefix: str) -> tuple[str, str]:
    """Make two people with a hundred ordinary messages between them; return a token."""
    from django.contrib.auth import get_user_model

    from messaging.domain import services
    from messaging.domain.tokens import token_issue

    User = get_user_model()
    ana = User.objects.create_user(username=f"{prefix}-ana", password="x" * 20)
    ben = User.objects.create_user(username=f"{prefix}-ben", password="x" * 20)
    for n in range(100):
        sender, to = (ana, ben) if n % 2 else (ben, ana)
        services.message_send(
            sender=sender,
            body=f"Message {n}: are we still meeting at the station at {n % 12 + 1} o'clock?",
            client_id=f"m{n}",
            to=to.username,
        )
    return token_issue(user=ana), ben.username


async def page_and_bytes(proxy: CountingProxy, port: int, token: str, compression) -> tuple:
    before = proxy.to_client
    client = await ChatClient(
        f"ws://127.0.0.1:{port}/ws/chat/", token, compression=compression
    ).connect()
    extensions = client.ws.response.headers.get("Sec-WebSocket-Extensions", "")
    page = await client.sync(0)
    await client.close()
    return page, proxy.to_client - before, extensions


@pytest.fixture
def daphne(request, transactional_db, tmp_path):
    with serving(tmp_path, env=getattr(request, "param", {})) as server:
        yield server


@pytest.mark.services
async def test_a_sync_page_crosses_the_link_compressed_and_reads_the_same(daphne):
    token, _ = await database_sync_to_async(chat_between)("deflate")
    proxy = CountingProxy(daphne.port)
    port = await proxy.start()
    plain, plain_bytes, plain_ext = await page_and_bytes(proxy, port, token, None)
    packed, packed_bytes, packed_ext = await page_and_bytes(proxy, port, token, "deflate")
    assert plain_ext == ""
    assert packed_ext.startswith("permessage-deflate")
    assert [m["body"] for m in packed] == [m["body"] for m in plain]
    assert len(packed) == 100
    assert packed_bytes < plain_bytes / 3, (packed_bytes, plain_bytes)
    proxy.server.close()


@pytest.mark.services
@pytest.mark.parametrize("daphne", [{"CHAT_WS_DEFLATE": "0"}], indirect=True)
async def test_compression_can_be_turned_off(daphne):
    token, _ = await database_sync_to_async(chat_between)("plain")
    proxy = CountingProxy(daphne.port)
    port = await proxy.start()
    page, _, extensions = await page_and_bytes(proxy, port, token, "deflate")
    assert extensions == "" and len(page) == 100
    proxy.server.close()
