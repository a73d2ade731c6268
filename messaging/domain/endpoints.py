"""Push endpoints: URLs the server posts to on a browser's word, so only public ones.

A subscription names any URL it likes. Posting to it from inside the network would let
anyone make the server reach its neighbours (the database, a cloud's metadata service),
so an endpoint must be `https` on a host whose every address is public, checked when it
is subscribed and again, against DNS, whenever a push connects (messaging/jobs/push_client.py
connects only to addresses this module calls public). CHAT_PUSH_ENDPOINTS_ALLOWED names
URL prefixes let through anyway: a push service of one's own, or a test's on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services that sit on addresses `is_global` calls public (the others,
# 169.254.169.254 and fd00:ec2::254, are link-local and private anyway).
METADATA = {
    ipaddress.ip_address("168.63.129.16"),  # Azure's wire server
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
# IPv6 prefixes that carry an IPv4 address a gateway would reach (NAT64).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_LENGTH = 1024


class EndpointRefused(ValueError):
    """The endpoint is not one the server may post to; the message says why."""


def allowed_by_setting(url: str) -> bool:
    """Tell whether CHAT_PUSH_ENDPOINTS_ALLOWED lets this URL through without checks."""
    return any(url.startswith(prefix) for prefix in settings.CHAT_PUSH_ENDPOINTS_ALLOWED if prefix)


def address_is_public(address: IPAddress) -> bool:
    """Tell whether an address is on the public Internet (not loopback, private,
    link-local, shared, reserved, multicast or a metadata service), IPv4 inside IPv6 too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not address_is_public(embedded):
            return False
    return address.is_global and not address.is_multicast and address not in METADATA


def url_refusal(url: object) -> str | None:
    """Say why a URL cannot be an endpoint by its form alone; None if it can."""
    if not isinstance(url, str) or not url:
        return "Give the subscription's endpoint URL."
    if len(url) > MAX_LENGTH:
        return f"An endpoint has at most {MAX_LENGTH} characters."
    if allowed_by_setting(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a URL."
    if parts.scheme != "https":
        return "Push endpoints must be https URLs."
    if not parts.hostname or parts.username or parts.password:
        return "Push endpoints name a host, and no user or password."
    if port == 0:
        return "Not a URL."
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    return None if address_is_public(literal) else "Push endpoints must be on public addresses."


def resolve_public(host: str, port: int) -> list[str]:
    """Resolve a host; return its addresses, or raise EndpointRefused unless all are public.

    All, not some: a name that answers one public and one private address could be made to
    reach the private one.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EndpointRefused("The endpoint's host name does not resolve.") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise EndpointRefused("The endpoint's host name does not resolve.")
    for text in addresses:
        if not address_is_public(ipaddress.ip_address(text.split("%", 1)[0])):
            raise EndpointRefused("Push endpoints must be on public addresses.")
    return addresses


def endpoint_refusal(url: object) -> str | None:
    """Say why the server may not post to this URL now (its form, then its addresses)."""
    refused = url_refusal(url)
    if refused is not None or allowed_by_setting(str(url)):
        return refused
    parts = urlsplit(str(url))
    try:
        resolve_public(parts.hostname or "", parts.port or 443)
    except EndpointRefused as error:
        return str(error)
    return None
