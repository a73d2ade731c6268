"""The socket's handshake: refuse it, or take the socket, join its groups and say `ready`."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import MaxConnectionsError, RedisError

from messaging import metrics
from messaging.delivery import heartbeat
from messaging.domain.events import session_group, token_group, user_group
from messaging.domain.logins import SocketLogin
from messaging.protocol import ChatError
from messaging.realtime.abandoned import client_left, count_abandoned
from messaging.realtime.group_batches import join_groups
from messaging.realtime.opening_batch import CLIENT_LEFT, Refused, opening_batches
from messaging.realtime.rate_checks import check_rate_together
from messaging.sending import batch as send_batch

log = logging.getLogger(__name__)


class HandshakeRefused(Exception):
    """A handshake that cannot go on, with the reason counted and logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Opening:
    """Open the socket, or refuse it before anything is written."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        refusal = await self._handshake_refusal(user)
        if refusal is not None:
            await self.refuse_handshake(refusal)
            return
        if self.client_left():
            count_abandoned("opening")
            return
        self._take(user)
        try:
            opened = await self._join_and_open()
        except HandshakeRefused as refused:
            if refused.reason == CLIENT_LEFT:
                count_abandoned("recording")
                return
            await self.refuse_handshake(refused.reason)
            return
        await self.accept()
        self.accepted = True
        metrics.OPEN_SOCKETS.inc()
        log.info(
            "socket %s open user=%s via=%s",
            self.socket_id,
            user.pk,
            self.scope.get("auth_method"),
            extra={"socket": self.socket_id, "user": user.pk},
        )
        await self.send_frame(opened)
        held, self.held = self.held, None
        for payload in held:
            await self.deliver(payload)

    async def _handshake_refusal(self, user) -> str | None:
        """Say why a handshake is refused before anything is written, or None."""
        if user is None or not user.is_authenticated or not user.is_active:
            return "no_credentials"
        if self.sockets.cooling_down(user.pk):
            return "cooling_down"
        try:
            await check_rate_together("connect", user.pk, settings.CHAT_CONNECT_RATE)
        except ChatError:
            # Each handshake costs the process a few database writes: a client that
            # reconnects in a loop is refused until its window passes.
            metrics.RATE_LIMITED.labels("connect").inc()
            return "rate_limited"
        return None

    def _take(self, user) -> None:
        """Make this socket the user's: its groups, its login, its place in the registry."""
        self.user = user
        # Whoever is online is whom people write to: their sends by username skip a lookup.
        send_batch.remember_user(user.pk, user.username)
        # Made at the first refusal: most sockets are never refused anything.
        self.rejections: deque[float] | None = None
        self.refused_until: dict[str, float] | None = None
        session = self.scope.get("session")
        by_session = self.scope.get("auth_method") == "session" and session is not None
        token_id = self.scope.get("token_id")
        self.joined_groups = [user_group(user.pk)]
        if by_session and session.session_key:
            self.joined_groups.append(session_group(session.session_key))
        if token_id is not None:
            self.joined_groups.append(token_group(token_id))
        # What the heartbeat re-checks, so that a revocation whose close was lost still
        # closes this socket within one beat.
        self.login = SocketLogin(
            channel_name=self.channel_name,
            user_id=user.pk,
            token_id=token_id,
            session_key=session.session_key if by_session else None,
        )
        # Frames for this socket are held until `ready` has gone out. It is registered
        # before its presence row is written, so that a change committed after that row
        # is visible finds it here (fanout.routes_for).
        self.held: list[dict[str, Any]] | None = []
        # Before the joins: an outage that begins after this makes the socket join again.
        self.outages_seen = self.sockets.outages
        self.sockets.add(self)
        heartbeat.keep_beating(self.sockets)
        # Whether its presence row may have been written: its close then deletes it.
        self.recorded = True

    def client_left(self) -> bool:
        """Tell whether this socket's client closed its connection before it was answered."""
        return client_left(self.incoming)

    async def _join_and_open(self) -> dict[str, Any]:
        """Join the socket's groups, record it and return its `ready` (or HandshakeRefused)."""
        try:
            await join_groups(self.channel_layer, self.channel_name, self.joined_groups)
            # With the handshakes waiting at the same time (messaging/realtime/opening_batch.py).
            return await opening_batches().call(self)
        except Refused as refused:
            if not refused.written:
                self.recorded = False
            raise HandshakeRefused(refused.reason) from None
        except (OperationalError, InterfaceError):
            metrics.DATABASE_ERRORS.inc()
            raise HandshakeRefused("database_unavailable") from None
        except MaxConnectionsError:
            # Redis is there, only the pool is busy: this socket's client tries again.
            metrics.REDIS_ERRORS.inc()
            raise HandshakeRefused("channel_layer_busy") from None
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.REDIS_ERRORS.inc()
            self.sockets.layer_failed(exc)
            raise HandshakeRefused(f"channel_layer_unavailable ({type(exc).__name__})") from None
        except Exception:
            # A bug in opening refuses the sockets of this batch alone; the layer is not to
            # blame, so the other sockets of the process stay open.
            log.exception("socket %s: handshake failed", self.socket_id)
            raise HandshakeRefused("server_error") from None

    async def refuse_handshake(self, reason: str) -> None:
        """Refuse the socket before accepting it (HTTP 403), counted and logged."""
        metrics.HANDSHAKES_REFUSED.labels(reason.split(" ")[0]).inc()
        user = getattr(self.scope.get("user"), "pk", None)
        log.info(
            "socket %s refused reason=%s user=%s",
            self.socket_id,
            reason,
            user,
            extra={"socket": self.socket_id, "reason": reason},
        )
        await self.close()
