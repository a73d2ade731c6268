"""Post Web Pushes to push services: many at once, each with a timeout, public addresses only.

One event loop per process, on a thread of its own, runs every push job (messaging/jobs/
runner.py hands them to it): a push service that answers slowly or not at all holds only
its own posts, at most CHAT_PUSH_PER_SERVICE at a time, each for at most
CHAT_PUSH_TIMEOUT_SECONDS, while pushes to every other service go on.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from pywebpush import WebPusher

from messaging.domain.endpoints import address_is_public, allowed_by_setting, url_refusal
from messaging.jobs import vapid
from messaging.singletons import per_process

log = logging.getLogger(__name__)

# Read at most this much of a push service's answer (it says little).
ANSWER_LIMIT = 4096


class NotPublic(OSError):
    """A push endpoint's host resolved to an address that is not public."""


class PublicOnlyResolver(AbstractResolver):
    """Resolve as usual, and refuse a host unless every address it has is public.

    Checked at each connection, so a name that was public when subscribed and points
    inside the network now (a DNS change, a rebinding attack) is refused.
    """

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if not address_is_public(ipaddress.ip_address(entry["host"].split("%", 1)[0])):
                raise NotPublic(f"{host} resolves to an address that is not public")
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass
class Push:
    """One push to post: where, what (plaintext, encrypted here), and with which headers."""

    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    headers: dict[str, str]
    # What the job needs to know of it afterwards.
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """A push service's answer: its HTTP status, or None and why no answer came."""

    status: int | None
    problem: str = ""
    retry_after: float | None = None
    # Not posted, and never to be: the endpoint or its keys are not acceptable.
    refused: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """The subscription no longer exists (RFC 8030, 8.2.1 and 404)."""
        return self.status in (404, 410)

    @property
    def worth_retrying(self) -> bool:
        if self.refused:
            return False
        return self.status is None or self.status == 429 or self.status >= 500


def origin_of(endpoint: str) -> str:
    """Return the push service's origin (scheme://host[:port]), the VAPID audience."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


class PushClient:
    """The pushes of this process: its event loop, its connections, its limits."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting = threading.Lock()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._per_service: dict[str, asyncio.Semaphore] = {}
        self._total: asyncio.Semaphore | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """Return the loop pushes run on, started on its own thread on first use."""
        with self._starting:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="chat-push-loop", daemon=True
                ).start()
                self._loop = loop
                atexit.register(self._close_at_exit)
            return self._loop

    def _close_at_exit(self) -> None:
        if self._loop is not None and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(2)

    def shut_down(self) -> None:
        """Close the connections and stop the loop's thread (a test forgetting this client)."""
        self._close_at_exit()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _session(self, checked: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(checked)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                resolver=PublicOnlyResolver() if checked else None,
                limit=settings.CHAT_PUSH_CONCURRENCY,
                limit_per_host=settings.CHAT_PUSH_PER_SERVICE,
            )
            session = self._sessions[checked] = aiohttp.ClientSession(connector=connector)
        return session

    def _limits(self, origin: str) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        if self._total is None:
            self._total = asyncio.Semaphore(settings.CHAT_PUSH_CONCURRENCY)
        service = self._per_service.get(origin)
        if service is None:
            service = self._per_service[origin] = asyncio.Semaphore(settings.CHAT_PUSH_PER_SERVICE)
        return service, self._total

    async def send_all(self, pushes: list[Push]) -> list[Outcome]:
        """Post the pushes (within the limits); return each one's outcome, in order.

        Pushes to different browsers go at once; one browser's go one after the other, in
        the order given, so that its notification ends on the newest message.
        """
        outcomes: list[Outcome | None] = [None] * len(pushes)
        by_endpoint: dict[str, list[int]] = {}
        for index, push in enumerate(pushes):
            by_endpoint.setdefault(push.endpoint, []).append(index)

        async def in_order(indexes: list[int]) -> None:
            for index in indexes:
                outcomes[index] = await self.send(pushes[index])

        await asyncio.gather(*(in_order(indexes) for indexes in by_endpoint.values()))
        return [outcome for outcome in outcomes if outcome is not None]

    async def send(self, push: Push) -> Outcome:
        """Encrypt and post one push; never raise for what the push service does."""
        allowed = allowed_by_setting(push.endpoint)
        refused = None if allowed else url_refusal(push.endpoint)
        if refused is not None:
            return Outcome(None, refused, refused=True)
        try:
            body = WebPusher(
                {"endpoint": push.endpoint, "keys": {"p256dh": push.p256dh, "auth": push.auth}}
            ).encode(push.payload, "aes128gcm")["body"]
            origin = origin_of(push.endpoint)
            headers = {
                **push.headers,
                **vapid.authorization(origin),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            }
        except Exception as error:
            return Outcome(None, f"cannot encrypt ({type(error).__name__})", refused=True)
        service, total = self._limits(origin)
        timeout = aiohttp.ClientTimeout(total=settings.CHAT_PUSH_TIMEOUT_SECONDS)
        try:
            async with service, total:
                async with self._session(not allowed).post(
                    push.endpoint,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    # A redirect could point anywhere, past every check above.
                    allow_redirects=False,
                ) as answer:
                    await answer.content.read(ANSWER_LIMIT)
                    return Outcome(answer.status, retry_after=_seconds(answer.headers))
        except TimeoutError:
            return Outcome(None, "no answer in time")
        except (aiohttp.ClientError, OSError) as error:
            if isinstance(error, NotPublic) or isinstance(
                getattr(error, "os_error", None), NotPublic
            ):
                return Outcome(
                    None, "the endpoint resolves to an address that is not public", refused=True
                )
            return Outcome(None, f"{type(error).__name__}: {str(error)[:200]}")

    async def close(self) -> None:
        """Close the connections (tests, and a worker stopping)."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def _seconds(headers) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


# This process's push client, made on first use.
push_client = per_process(PushClient, on_reset=PushClient.shut_down)
