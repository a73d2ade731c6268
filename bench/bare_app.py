"""An ASGI application that does nothing: what daphne itself costs a request and a socket.

bench/daphne_alone.py serves it with one daphne, as the bigdb phase serves the product, and
times the three kinds of call the product's reads are made of: an HTTP request, a socket
until its first frame, and a frame answered on an open socket. Every answer is at once and
small, so what those take is daphne's and the clients' work alone: no application served by
one daphne can answer the same calls faster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BODY = b'{"ok":true}'
READY = '{"type":"ready"}'


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer a request with a short JSON body; accept a socket, say `ready`, echo frames."""
    if scope["type"] == "http":
        await _answer_request(receive, send)
    elif scope["type"] == "websocket":
        await _echo_socket(receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _answer_request(receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


async def _echo_socket(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": READY})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return
