"""Let daphne close sockets with the standard codes 1001-1014 (e.g. 1008, 1013).

Autobahn, under daphne, lets an application close only with 1000 or 3000-4999
(django/daphne#374), although RFC 6455 defines 1008 (policy violation) and 1013 (try again
later) for servers to send, and our protocol uses both. The close frame itself is fine for
every client; only autobahn's argument check is in the way, so the frame is sent directly.
"""

from __future__ import annotations

# Codes a server may send (RFC 6455 section 7.4.1 and the IANA registry), beyond 1000.
STANDARD_SERVER_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})


def allow_standard_close_codes() -> None:
    """Patch daphne's server-side close to accept the standard codes."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # Not running under daphne.
        return
    if getattr(WebSocketProtocol, "_standard_close_codes", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        if code not in STANDARD_SERVER_CODES:
            original(self, code)
        elif self.state == WebSocketProtocol.STATE_OPEN:
            self.sendCloseFrame(code=code, isReply=False)
        # Otherwise the socket is already closing: nothing more to send.

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol._standard_close_codes = True
