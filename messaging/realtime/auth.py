"""Authenticate WebSocket handshakes: a bearer token, or a session cookie from our own origin."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import validate_host

from messaging import metrics
from messaging.domain.tokens import bearer_key, tokens_for_keys
from messaging.realtime.abandoned import client_left, count_abandoned
from messaging.realtime.batched_calls import BatchedCalls
from messaging.singletons import per_event_loop

log = logging.getLogger(__name__)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def allowed_hosts() -> list[str]:
    """Return the hosts a browser page of ours may be served from."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(origin: str | None) -> bool:
    """Tell whether a browser's Origin is one of the site's hosts (stops CSWSH)."""
    if not origin:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return validate_host(host, allowed_hosts())


async def deny(send, reason: str) -> None:
    """Refuse the handshake: daphne answers it with HTTP 403."""
    metrics.HANDSHAKES_REFUSED.labels(reason).inc()
    log.info("socket refused reason=%s", reason, extra={"reason": reason})
    await send({"type": "websocket.close", "code": 1008})


class WebSocketAuthMiddleware:
    """Put the authenticated user in scope["user"], or refuse the handshake."""

    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        if client_left(receive):
            count_abandoned("login")
            return None
        # Past this, the handshake's database work is skipped (the consumer's `_open`): its
        # client has given up, and in a reconnect storm that work is what others wait behind.
        arrived_at = scope.get("arrived_at") or time.monotonic()
        scope = dict(scope, give_up_at=arrived_at + settings.CHAT_HANDSHAKE_DEADLINE)
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            # A present Authorization header alone decides, whatever the Origin.
            key = bearer_key(authorization)
            # With the tokens of the other handshakes waiting at the same time, in one read.
            login = await token_logins().call(key) if key else None
            if login is None:
                await _drain_connect(receive)
                return await deny(send, "bad_token")
            user, token_id = login
            scope = dict(scope, user=user, auth_method="token", token_id=token_id)
            return await self.inner(scope, receive, send)
        if not origin_allowed(_header(scope, b"origin")):
            await _drain_connect(receive)
            return await deny(send, "foreign_origin")
        scope = dict(scope, auth_method="session")
        return await self.session_stack(scope, receive, send)


def _token_logins(keys: list[str]) -> list[tuple[object, int] | None]:
    """Return for each secret the user of its live token and the token's id, or None."""
    return [None if token is None else (token.user, token.pk) for token in tokens_for_keys(keys)]


async def _token_logins_together(keys: list[str]) -> list[tuple[object, int] | None]:
    return await database_sync_to_async(_token_logins)(keys)


# Tokens read in one round at most.
TOKENS_AT_ONCE = 200
token_logins = per_event_loop(lambda: BatchedCalls(_token_logins_together, TOKENS_AT_ONCE))
token_logins.__doc__ = "Return this event loop's queue of bearer tokens to check together."


async def _drain_connect(receive) -> None:
    # Read the websocket.connect event first so that the server sees a clean refusal.
    await receive()
