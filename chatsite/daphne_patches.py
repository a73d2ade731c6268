"""Changes to daphne: standard close codes, a bounded send buffer, lighter idle sockets.

Both reach into daphne (and the Twisted transport under it) because daphne offers no hook
for either; tests/test_daphne_patches.py fails when a daphne or Twisted release moves what
they rely on.

Close codes: autobahn, under daphne, lets an application close only with 1000 or
3000-4999 (django/daphne#374), although RFC 6455 defines 1008 (policy violation) for
servers to send, and the protocol closes a flooding socket with it. The close frame itself
is fine for every client; only autobahn's argument check is in the way, so the frame is
sent directly.

Send buffer: daphne writes every frame to the transport at once, and Twisted keeps what the
client has not read in memory without limit: 20 sockets that never read, asking for sync
pages, grew one process by 70 MB a second. Before each frame is written, the bytes the
transport still holds of earlier frames are compared with CHAT_SOCKET_SEND_BUFFER; past
it, the socket is closed with 1008 (if the client never reads that close frame either,
autobahn drops the connection one second later). The client reconnects and syncs: nothing
stored is lost.

Lighter, bounded queue: daphne hands a socket's frames to the application through an
asyncio.Queue, which allocates four deques when made, about 2.5 KB that each idle socket
held for nothing, and has no bound. A WebSocket's queue is a WaitingFrames
(messaging/realtime/backpressure.py) instead, which allocates only while something waits
and, once the application has set its bound, closes a socket whose client writes faster
than it is answered as daphne puts the frames in: no task per socket copies them to
another queue.

Handshake leftovers: once a socket is open, the HTTP request it was upgraded from (Twisted
keeps it in its HTTP channel, which stays the transport's producer) and autobahn's copy of
the request's bytes and headers are no longer read, yet each socket kept them, about 4 KB.
They are let go when the socket opens; daphne keeps only the path for its access log.

Options read from the factory: autobahn copies its factory's 29 protocol options (timeouts,
sizes, origins) into every connection's instance dict when it connects, unless the class
already has them; the class has them as properties reading the factory instead, so a socket
holds only an option set on it alone (autobahn sets none of them differently).

Taking connections: the process takes only what its handshake gate has room for
(messaging/realtime/accept_pause.py). daphne hands each port it listens on to
`listen_success`, which now registers it there and deepens its backlog from Twisted's 50
to CHAT_LISTEN_BACKLOG (daphne's -b/-p cannot set it; an endpoint's own `backlog=` is kept);
each connection its factory builds is counted there until its first request is processed
or it closes without one.

Options' debug line: autobahn also pretty-prints those 29 options for a debug log line
at every connection, before the logger decides to drop it (6.6 % of a handshake's CPU in a
profile of 5,000); the text is made only when a debug line is written.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

log = logging.getLogger(__name__)

# Codes a server may send (RFC 6455 section 7.4.1 and the IANA registry), beyond 1000.
STANDARD_SERVER_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
CLOSE_POLICY_VIOLATION = 1008
# What Twisted listens with unless an endpoint string names a backlog (daphne's -b/-p never do).
TWISTED_BACKLOG = 50


def unsent_bytes(transport) -> int:
    """Return how many bytes a Twisted transport holds that the peer has not taken yet."""
    buffered = getattr(transport, "dataBuffer", None)
    if buffered is None:
        return 0
    return len(buffered) - transport.offset + transport._tempDataLen


class _Handshake:
    """What daphne still reads of a socket's handshake request once it is open."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def patch_daphne() -> None:
    """Apply the changes to daphne, once."""
    try:
        from daphne.http_protocol import HTTPFactory, WebRequest
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.web.http import HTTPChannel
    except ImportError:  # Not running under daphne.
        return
    if getattr(WebSocketProtocol, "_chat_patched", False):
        return
    _allow_standard_close_codes(WebSocketProtocol)
    _bound_send_buffer(WebSocketProtocol)
    _light_socket_queues(Server)
    _forget_handshakes(WebRequest, WebSocketProtocol)
    _options_from_factory(WebSocketProtocol)
    _format_options_when_logged()
    _pace_listening(Server, HTTPFactory, WebRequest, HTTPChannel)
    WebSocketProtocol._chat_patched = True


def _allow_standard_close_codes(protocol_class) -> None:
    original = protocol_class.serverClose

    def server_close(self, code=None):
        if code not in STANDARD_SERVER_CODES:
            original(self, code)
        elif self.state == protocol_class.STATE_OPEN:
            self.sendCloseFrame(code=code, isReply=False)
            if code == CLOSE_POLICY_VIOLATION:
                # A flooding client keeps writing during the close handshake, and reading
                # it would cost the process a core for up to a second per socket: stop
                # reading; autobahn drops the connection when no close reply came.
                self.transport.pauseProducing()
        # Otherwise the socket is already closing: nothing more to send.

    protocol_class.serverClose = server_close


def _bound_send_buffer(protocol_class) -> None:
    from django.conf import settings

    from messaging import metrics

    original = protocol_class.serverSend

    def server_send(self, content, binary=False):
        # What earlier frames left unsent tells a client that does not read; a frame larger
        # than the bound (a sync page) written to one that does is not held against it.
        waiting = unsent_bytes(self.transport)
        original(self, content, binary)
        if waiting > settings.CHAT_SOCKET_SEND_BUFFER and self.state == protocol_class.STATE_OPEN:
            metrics.SOCKETS_CLOSED_FOR_ABUSE.labels("send_buffer").inc()
            log.warning(
                "socket closed: %d bytes waiting for a client that does not read them",
                waiting,
                extra={"client": str(getattr(self, "client_addr", ""))},
            )
            self.serverClose(CLOSE_POLICY_VIOLATION)

    protocol_class.serverSend = server_send


def _light_socket_queues(server_class) -> None:
    from messaging.realtime.backpressure import WaitingFrames

    original = server_class.create_application

    def create_application(self, protocol, scope):
        if scope.get("type") != "websocket":
            return original(self, protocol, scope)
        # As daphne's own (4.2), with a WaitingFrames in place of the asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = WaitingFrames()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return input_queue

    server_class.create_application = create_application


def _forget_handshakes(request_class, protocol_class) -> None:
    original_process = request_class.process
    original_open = protocol_class.onOpen

    def process(self):
        result = original_process(self)
        # daphne sets the request's transport to None only when it handed the connection
        # to a WebSocket protocol; the HTTP channel would keep the request until it closes.
        channel = self.channel
        if self.transport is None and channel is not None and self in channel.requests:
            channel.requests.remove(self)
        return result

    def on_open(self):
        original_open(self)
        for name in ("http_request_data", "http_headers", "http_status_line"):
            if hasattr(self, name):
                setattr(self, name, None)
        request = getattr(self, "request", None)
        if request is not None:
            self.request = _Handshake(request.path)

    request_class.process = process
    protocol_class.onOpen = on_open


def _options_from_factory(protocol_class) -> None:
    for name in protocol_class.CONFIG_ATTRS:
        if name not in vars(protocol_class):
            setattr(protocol_class, name, _factory_option(name))


def _factory_option(name: str) -> property:
    """Make a protocol option read from the factory unless set to another value on a socket."""
    own = "_own_" + name

    def get(self):
        mine = vars(self)
        if own in mine:
            return mine[own]
        return getattr(self.factory, name)

    def set_(self, value) -> None:
        factory = getattr(self, "factory", None)
        if factory is not None and getattr(factory, name, _UNSET) is value:
            vars(self).pop(own, None)
        else:
            vars(self)[own] = value

    return property(get, set_, doc=f"autobahn's {name}, as the factory has it.")


_UNSET = object()


def _format_options_when_logged() -> None:
    from autobahn.websocket import protocol

    pretty = protocol.pformat

    def pformat(value, *args, **kwargs):
        # The options' list is the only list autobahn formats (the others are dicts, which
        # keep their text at once: Timings.__str__ must return a str).
        if isinstance(value, list):
            return _FormattedWhenLogged(partial(pretty, value, *args, **kwargs))
        return pretty(value, *args, **kwargs)

    protocol.pformat = pformat


class _FormattedWhenLogged:
    """A log argument whose text is made when a log line is written with it."""

    __slots__ = ("_text",)

    def __init__(self, text) -> None:
        self._text = text

    def __str__(self) -> str:
        return self._text()

    __repr__ = __str__


def _pace_listening(server_class, factory_class, request_class, channel_class) -> None:
    from messaging.realtime.accept_pause import LISTENING

    original_listen_success = server_class.listen_success
    original_build = factory_class.buildProtocol
    original_process = request_class.process
    original_lost = channel_class.connectionLost

    def listen_success(self, port):
        if all(hasattr(port, name) for name in ("doRead", "stopReading", "startReading")):
            LISTENING.add(port)
            if getattr(port, "backlog", None) == TWISTED_BACKLOG:
                _deepen_backlog(port)  # not one an endpoint asked for (`backlog=`)
        return original_listen_success(self, port)

    def build_protocol(self, addr):
        built = original_build(self, addr)
        if built is not None:
            # Twisted wraps the HTTP channel (to switch to HTTP/2); requests know the channel.
            getattr(built, "_channel", built)._chat_taken_at = LISTENING.taken()
        return built

    def process(self):
        channel = self.channel
        taken_at = None if channel is None else channel.__dict__.pop("_chat_taken_at", None)
        if taken_at is not None:
            LISTENING.heard(taken_at)
        return original_process(self)

    def connection_lost(self, reason):
        taken_at = self.__dict__.pop("_chat_taken_at", None)
        if taken_at is not None:
            LISTENING.heard(taken_at)
        return original_lost(self, reason)

    server_class.listen_success = listen_success
    factory_class.buildProtocol = build_protocol
    request_class.process = process
    channel_class.connectionLost = connection_lost


def _deepen_backlog(port) -> None:
    """Listen with CHAT_LISTEN_BACKLOG: the connections the kernel holds while none are taken."""
    from django.conf import settings

    backlog = settings.CHAT_LISTEN_BACKLOG
    listening_socket = getattr(port, "socket", None)
    if not backlog or listening_socket is None:
        return
    try:
        # Linux takes a new backlog for a socket already listening (capped by somaxconn).
        listening_socket.listen(backlog)
    except OSError as error:
        log.warning("listen backlog left as it was: %s", error)
