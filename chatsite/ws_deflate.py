"""permessage-deflate (RFC 7692) for every socket whose client offers it, in bounded memory.

autobahn, under daphne, implements the extension but daphne never accepts an offer: every
browser offers it, and a sync page of 200 messages crosses a phone's link several times
smaller compressed. daphne has no option for it, so the offer is accepted by setting
autobahn's `perMessageCompressionAccept` on daphne's WebSocket factory as it is made.

Memory stays bounded: both directions without context takeover and with small windows, so
each message is compressed on its own and the zlib state lives only while a message passes;
an idle socket holds none (zlib would keep about 32 KB per direction otherwise).
"""

from __future__ import annotations

from autobahn.websocket.compress import (
    PERMESSAGE_COMPRESSION_EXTENSION,
    PerMessageDeflate,
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)

# 4 KB windows and zlib's memory level 5, as python-websockets chooses by default: JSON
# frames repeat their keys within a few hundred bytes, so a larger window gains little.
WINDOW_BITS = 12
MEM_LEVEL = 5


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that drops its zlib state when a message is through."""

    def end_compress_message(self) -> bytes:
        data = super().end_compress_message()
        if self._is_server and self.server_no_context_takeover:
            self._compressor = None
        return data

    def end_decompress_message(self) -> None:
        super().end_decompress_message()
        if self._is_server and self.client_no_context_takeover:
            self._decompressor = None


def accept_deflate(offers: list) -> PerMessageDeflateOfferAccept | None:
    """Accept a client's permessage-deflate offer on the terms above; None if it made none."""
    for offer in offers:
        if not isinstance(offer, PerMessageDeflateOffer):
            continue
        return PerMessageDeflateOfferAccept(
            offer,
            request_no_context_takeover=offer.accept_no_context_takeover,
            request_max_window_bits=WINDOW_BITS if offer.accept_max_window_bits else 0,
            no_context_takeover=True,
            window_bits=min(WINDOW_BITS, offer.request_max_window_bits or WINDOW_BITS),
            mem_level=MEM_LEVEL,
        )
    return None


def offer_deflate() -> None:
    """Make daphne's WebSocket factory accept permessage-deflate, once."""
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # Not running under daphne.
        return
    if getattr(WebSocketFactory, "_chat_deflate", False):
        return
    PERMESSAGE_COMPRESSION_EXTENSION[PerMessageDeflate.EXTENSION_NAME]["PMCE"] = BoundedDeflate
    original = WebSocketFactory.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.setProtocolOptions(perMessageCompressionAccept=accept_deflate)

    WebSocketFactory.__init__ = init
    WebSocketFactory._chat_deflate = True
