"""What an idle socket holds: daphne's bounded frame queue, autobahn's options on the factory."""

import asyncio

from chatsite.daphne_patches import patch_daphne
from messaging.realtime.backpressure import WaitingFrames, WaitingFramesLimit


def receive_frame(text: str) -> dict:
    return {"type": "websocket.receive", "text": text}


async def test_daphnes_queue_closes_a_socket_whose_frames_pass_the_bound(settings):
    settings.CHAT_SOCKET_WAITING_FRAMES = 3
    settings.CHAT_SOCKET_WAITING_BYTES = 1000
    queue = WaitingFrames()  # what daphne's create_application makes (daphne_patches.py)
    sent: list[dict] = []
    taken: list[dict] = []
    started = asyncio.Event()

    async def application(scope, receive, send):
        assert receive == queue.get  # daphne's queue is read directly, not copied
        taken.append(await receive())
        started.set()
        await asyncio.sleep(3600)  # busy: frames pile up

    async def send(message):
        sent.append(message)

    queue.put_nowait({"type": "websocket.connect"})
    app = asyncio.ensure_future(
        WaitingFramesLimit(application)({"type": "websocket"}, queue.get, send)
    )
    await started.wait()
    for n in range(3):
        queue.put_nowait(receive_frame(str(n)))
    assert queue.waiting() == 3 and not sent
    queue.put_nowait(receive_frame("3"))
    await asyncio.sleep(0)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert queue.waiting() == 0  # dropped unanswered
    queue.put_nowait(receive_frame("4"))
    assert queue.waiting() == 0 and len(sent) == 1
    queue.put_nowait({"type": "websocket.disconnect", "code": 1008})
    assert await queue.get() == {"type": "websocket.disconnect", "code": 1008}
    app.cancel()


async def test_an_idle_queue_holds_no_deque_and_no_future():
    queue = WaitingFrames()
    queue.put_nowait({"type": "websocket.connect"})
    assert await queue.get() == {"type": "websocket.connect"}
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(receive_frame("x"))
    assert await waiting == receive_frame("x")
    assert queue.frames is None and queue.taker is None and queue.bytes == 0


def test_autobahn_options_are_read_from_the_factory_not_copied():
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    patch_daphne()
    factory = WebSocketFactory(server_class=None)
    factory.setProtocolOptions(openHandshakeTimeout=7, autoPingInterval=20)
    protocol = WebSocketProtocol()
    protocol.factory = factory
    before = set(vars(protocol))
    for name in WebSocketProtocol.CONFIG_ATTRS:
        assert hasattr(protocol, name), name  # autobahn copies only what is missing
    assert protocol.openHandshakeTimeout == 7 and protocol.autoPingInterval == 20
    assert not any(name in vars(protocol) for name in WebSocketProtocol.CONFIG_ATTRS)
    # What autobahn sets to the factory's own value stays there; another value is the socket's.
    protocol.trackTimings = factory.trackTimings
    protocol.autoPingInterval = 5
    assert protocol.autoPingInterval == 5 and factory.autoPingInterval == 20
    assert set(vars(protocol)) - before == {"_own_autoPingInterval"}
