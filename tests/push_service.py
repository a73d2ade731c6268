"""A Web Push service on 127.0.0.1 for the tests: it checks what a real one checks.

Each subscription it hands out is a browser's: a P-256 key pair and an auth secret of its
own. A push posted to it must carry a VAPID JWT (RFC 8292) signed by the server's
application key for this service's origin; its body must decrypt (RFC 8291, aes128gcm)
with the subscription's private key. It answers as a subscription is told to: 201 (taken),
410 (gone), or hang for a while and close without answering.

Only the standard library and the packages pywebpush brings (cryptography, http_ece).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.helpers import free_port


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Browser:
    """One subscription: what the browser keeps secret, and how the service treats it."""

    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str
    # "ok" (201), "gone" (410), "hang" (HANG seconds, then the connection closes), or
    # "hang-once" (the first push hangs, the others are taken).
    behaviour: str = "ok"

    def subscription(self) -> dict[str, Any]:
        """Return the PushSubscription as a browser's pushManager gives it, in JSON."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }


def new_browser(endpoint: str, behaviour: str = "ok", token: str = "") -> Browser:
    """Make a browser's keys for a subscription to an endpoint."""
    return Browser(
        token=token,
        private_key=ec.generate_private_key(ec.SECP256R1()),
        auth=secrets.token_bytes(16),
        endpoint=endpoint,
        behaviour=behaviour,
    )


@dataclass
class Received:
    """A push the service took (answered 201) or refused, as decrypted."""

    token: str
    payload: dict[str, Any] | None
    headers: dict[str, str]
    status: int
    at: float = field(default_factory=time.time)


class PushService:
    """The push service, on a free port of 127.0.0.1, until stop()."""

    HANG = 30.0

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.browsers: dict[str, Browser] = {}
        self.received: list[Received] = []
        # Requests that arrived, whatever became of them (hung ones too).
        self.arrived: list[tuple[str, float]] = []
        self.problems: list[str] = []
        # The application server key pushes must be signed with (GET /api/push/key/).
        self.expected_key: str | None = None
        self.changed = threading.Condition()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                service._handle(self)

        class Server(ThreadingHTTPServer):
            # Room for every connection a worker opens at once: with the default of 5,
            # the kernel drops the others' SYNs and they come back a second later.
            request_queue_size = 256

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PushService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def browser(self, behaviour: str = "ok") -> Browser:
        """Make a new browser's subscription at this service."""
        token = secrets.token_urlsafe(16)
        browser = new_browser(f"{self.origin}/push/{token}", behaviour, token)
        self.browsers[token] = browser
        return browser

    # --- what the tests read --------------------------------------------------------------

    def taken(self, browser: Browser | None = None) -> list[Received]:
        """Return the pushes answered 201, of one browser or of all, in order."""
        with self.changed:
            return [
                r
                for r in self.received
                if r.status == 201 and (browser is None or r.token == browser.token)
            ]

    def wait_arrived(self, browser: Browser, timeout: float = 10) -> float:
        """Wait until a push to this browser arrived, answered or not; return when."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [at for token, at in self.arrived if token == browser.token]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0, "no push arrived"
                self.changed.wait(left)

    def wait_taken(self, count: int, browser: Browser | None = None, timeout: float = 10):
        """Wait until `count` pushes were taken (of one browser or all); return them."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.taken(browser)) < count:
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"{len(self.taken(browser))} pushes taken, not {count}; problems: "
                    f"{self.problems}"
                )
                self.changed.wait(left)
            return self.taken(browser)

    # --- a push arriving ------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        token = request.path.removeprefix("/push/")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        with self.changed:
            self.arrived.append((token, time.time()))
            self.changed.notify_all()
        browser = self.browsers.get(token)
        if browser is None:
            return self._answer(request, token, 404, None)
        if browser.behaviour in ("hang", "hang-once"):
            if browser.behaviour == "hang-once":
                browser.behaviour = "ok"
            time.sleep(self.HANG)
            request.close_connection = True
            return
        problem = self._check_vapid(request.headers.get("Authorization", ""))
        if problem is None and request.headers.get("Content-Encoding") != "aes128gcm":
            problem = "Content-Encoding is not aes128gcm"
        if problem is None and not request.headers.get("TTL", "").isdigit():
            problem = "no TTL header"
        payload = None
        if problem is None:
            try:
                plain = http_ece.decrypt(
                    body,
                    private_key=browser.private_key,
                    auth_secret=browser.auth,
                    version="aes128gcm",
                )
                payload = json.loads(plain)
            except Exception as error:
                problem = f"cannot decrypt: {error!r}"
        if problem is not None:
            with self.changed:
                self.problems.append(problem)
            return self._answer(request, token, 400, None)
        status = 410 if browser.behaviour == "gone" else 201
        return self._answer(request, token, status, payload)

    def _answer(self, request, token: str, status: int, payload) -> None:
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
        with self.changed:
            self.received.append(Received(token, payload, dict(request.headers), status))
            self.changed.notify_all()

    def _check_vapid(self, header: str) -> str | None:
        """Check the VAPID Authorization header as a push service does; None if good."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            return f"Authorization scheme {scheme!r}, not vapid"
        parts = dict(item.strip().split("=", 1) for item in rest.split(",") if "=" in item)
        if "t" not in parts or "k" not in parts:
            return "Authorization lacks t= or k="
        if self.expected_key is not None and parts["k"] != self.expected_key:
            return "signed with another key than the server's application key"
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b64url_decode(parts["k"])
            )
            header_b64, claims_b64, signature_b64 = parts["t"].split(".")
            signature = b64url_decode(signature_b64)
            key.verify(
                encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                ),
                f"{header_b64}.{claims_b64}".encode("ascii"),
                ec.ECDSA(hashes.SHA256()),
            )
            jwt_header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(claims_b64))
        except (ValueError, InvalidSignature) as error:
            return f"bad VAPID token: {error!r}"
        if jwt_header.get("alg") != "ES256":
            return f"JWT alg {jwt_header.get('alg')!r}"
        if claims.get("aud") != self.origin:
            return f"aud {claims.get('aud')!r} is not {self.origin}"
        if not (time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600):
            return f"exp {claims.get('exp')} not within 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return f"sub {claims.get('sub')!r}"
        return None
