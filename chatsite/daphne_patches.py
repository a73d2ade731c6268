"""Two changes to daphne's WebSocket protocol: standard close codes, a bounded send buffer.

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
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Codes a server may send (RFC 6455 section 7.4.1 and the IANA registry), beyond 1000.
STANDARD_SERVER_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
CLOSE_POLICY_VIOLATION = 1008


def unsent_bytes(transport) -> int:
    """Return how many bytes a Twisted transport holds that the peer has not taken yet."""
    buffered = getattr(transport, "dataBuffer", None)
    if buffered is None:
        return 0
    return len(buffered) - transport.offset + transport._tempDataLen


def patch_daphne() -> None:
    """Apply both changes to daphne's WebSocket protocol, once."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # Not running under daphne.
        return
    if getattr(WebSocketProtocol, "_chat_patched", False):
        return
    _allow_standard_close_codes(WebSocketProtocol)
    _bound_send_buffer(WebSocketProtocol)
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
