"""A Python client of the chat's WebSocket protocol, for bots, scripts, tests and benchmarks.

    from messaging.client import ChatClient

    async with ChatClient("wss://chat.example/ws/chat/", token) as chat:
        await chat.send("hello", to="bob")
        async for event in chat.events(reconnect=True):
            if event["type"] == "message.new":
                print(event["message"]["sender"]["username"], event["message"]["body"])

It needs only the `websockets` library: it imports nothing of Django or of the server, and
its modules import each other relatively, so a script can copy this folder under any name.
The frames are those of docs/protocol.md.

What it does for its user, so that a bot never misses a message nor sees one twice:
- `send` gives every message a client id and waits for its `message.ack`; a refusal raises
  `ChatError`. Sending again with the same client id never stores the message twice.
- `events()` hands on what the server pushes, in `seq` order: when a push's `prev_seq` shows
  that an earlier push was lost, it first syncs the gap and hands on the missed changes.
- `reconnect()` reopens the socket with backoff and syncs from the last seen `seq`.

`chat.py` puts the client together from `connection.py` (opening with backoff, reading,
closing), `requests.py` (frames sent and the answers matched to them) and `events.py` (what
the server pushes, in order, gaps synced); `frames.py` holds the frame types and `ChatError`.
"""

from .chat import ChatClient
from .frames import CLOSE_SESSION_ENDED, PUSH_TYPES, SYNCED, ChatError

__all__ = ["CLOSE_SESSION_ENDED", "PUSH_TYPES", "SYNCED", "ChatClient", "ChatError"]
