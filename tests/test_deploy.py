"""The documented production set-up, run for real: deploy/'s nginx site (TLS, WebSocket
upgrade, proxy headers, static files) in front of two daphne processes started as the
systemd unit starts them, on PostgreSQL and Redis; the example environment file with
deploy/chat-manage; and a clean stop (SIGTERM) behind the proxy."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pwd
import re
import secrets
import shlex
import signal
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed, InvalidStatus

from messaging.domain.tokens import token_issue
from messaging.models import Message
from tests.deploy_support import (
    CHAT_MANAGE,
    CLIENT_ADDRESS,
    ENV_EXAMPLE,
    HOSTNAME,
    PROCFILE,
    SITE,
    SPOOFED_FORWARDED_FOR,
    Nginx,
    ProxiedClient,
    UnitDaphne,
    UnitWorker,
    self_signed_certificate,
    unit_daphne_arguments,
    unit_setting,
)
from tests.factories import PASSWORD
from tests.helpers import send_frame
from tests.live import ROOT, sync_all

# The daphne processes: the test settings with the production site's host name and cookies.
SERVER_ENV = {"ALLOWED_HOSTS": f"{HOSTNAME},127.0.0.1,localhost", "SECURE_COOKIES": "1"}


# --- The files of deploy/ agree with the product ------------------------------------------


def settings_read_from_the_environment() -> list[str]:
    source = (ROOT / "chatsite" / "settings.py").read_text()
    return sorted(set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source)))


def test_the_example_environment_names_every_setting_with_a_comment():
    lines = ENV_EXAMPLE.read_text().splitlines()
    described = {}
    for number, line in enumerate(lines):
        match = re.match(r"^(?:# )?([A-Z][A-Z0-9_]*)=", line)
        if match and number and lines[number - 1].startswith("# "):
            described[match.group(1)] = line
    settings = settings_read_from_the_environment()
    missing = [name for name in settings if name not in described]
    assert not missing, f"add these to {ENV_EXAMPLE.name}, each under a comment: {missing}"
    # CHAT_BIND is the unit's, not Django's; anything else must be a setting that exists.
    unknown = set(described) - set(settings) - {"CHAT_BIND"}
    assert not unknown, f"{ENV_EXAMPLE.name} names settings that do not exist: {unknown}"
    # Readable by systemd and sh alike: no quotes, spaces or $ in values.
    for line in lines:
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"$`\\]*", line), line


def test_the_unit_and_the_procfile_run_daphne_behind_the_proxy():
    arguments = unit_daphne_arguments(8001)
    assert arguments[:4] == ["-b", "127.0.0.1", "-p", "8001"]
    assert "--proxy-headers" in arguments
    assert arguments[-1] == "chatsite.asgi:application"
    assert unit_setting("EnvironmentFile") == "/etc/chat/chat.env"
    assert unit_setting("KillSignal") == "SIGTERM"
    assert int(unit_setting("LimitNOFILE")) >= 65536
    # The Procfile runs the same command, with the port honcho/foreman give it.
    (command,) = [
        line.removeprefix("web:").strip()
        for line in PROCFILE.read_text().splitlines()
        if line.startswith("web:")
    ]
    wrapper, program, *procfile_arguments = shlex.split(command)
    # The wrapper starts a daphne that died again (tests/test_ops_procfile.py).
    assert wrapper == "deploy/keep-running"
    assert program == ".venv/bin/daphne"
    assert [a.replace("$PORT", "8001") for a in procfile_arguments] == arguments


def test_nginx_waits_longer_than_the_quiet_time_of_an_open_socket():
    ping_ms = re.search(
        r"PING_EVERY = (\d+);", (ROOT / "static" / "messaging" / "net" / "socket.js").read_text()
    )
    assert ping_ms, "the browser client's ping interval"
    site = SITE.read_text()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        (seconds,) = re.findall(rf"^\s*{directive} (\d+)s;", site, re.M)
        # Room for a late or lost ping before nginx cuts a healthy socket.
        assert int(seconds) >= 2 * int(ping_ms.group(1)) / 1000, directive


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    cert, _ = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return cert


@pytest.fixture(scope="module")
def static_root(tmp_path_factory) -> Path:
    """Collect static files as a deploy does: deploy/chat-manage with the example env file."""
    folder = tmp_path_factory.mktemp("production")
    static_root = folder / "static"
    env_file = folder / "chat.env"
    text = ENV_EXAMPLE.read_text()
    for name, value in (("SECRET_KEY", secrets.token_urlsafe(50)), ("STATIC_ROOT", static_root)):
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, name
    env_file.write_text(text)
    env = {
        "PATH": os.environ["PATH"],
        "CHAT_ENV_FILE": str(env_file),
        # As the service user; in the test that is whoever runs it.
        "CHAT_USER": pwd.getpwuid(os.geteuid()).pw_name,
    }
    for command in (
        ["collectstatic", "--noinput"],
        ["check", "--deploy", "--fail-level", "WARNING"],
    ):
        done = subprocess.run(
            [str(CHAT_MANAGE), *command], env=env, cwd=folder, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return static_root


def test_the_example_environment_collects_static_files_and_passes_the_deploy_checks(
    static_root,
):
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    hashed = static_root / manifest["messaging/chat.css"]
    assert hashed.exists() and hashed.with_name(hashed.name + ".gz").exists()


# --- nginx in front of two daphne processes -----------------------------------------------


@pytest.fixture
def stack(transactional_db, tmp_path, certificate, static_root):
    """Start two daphne processes as chat@.service does, a worker as chat-worker@.service
    does, and nginx with the site in front."""
    # The worker's mail goes to files, where the tests read what it sent.
    worker = UnitWorker(
        env={
            **SERVER_ENV,
            # An absolute path: the URL's path loses its first slash.
            "EMAIL_URL": f"filemail:///{tmp_path / 'mail'}",
            "CHAT_SITE_URL": f"https://{HOSTNAME}",
        },
        log_path=tmp_path / "worker.log",
    )
    daphnes = [
        UnitDaphne(
            env={**SERVER_ENV, "STATIC_ROOT": str(static_root)},
            log_path=tmp_path / f"daphne{n}.log",
            access_log=tmp_path / f"a{n}.log",
        )
        for n in range(2)
    ]
    nginx = Nginx(
        tmp_path / "nginx",
        cert=certificate,
        static_root=static_root,
        upstream_ports=[daphne.port for daphne in daphnes],
    )
    try:
        for daphne in daphnes:
            daphne.launch()
        nginx.start()
        worker.start()
        for daphne in daphnes:
            daphne.wait_listening()
        yield nginx, daphnes
    finally:
        nginx.stop()
        worker.stop()
        for daphne in daphnes:
            daphne.stop()
    for log_path in [*(daphne.log_path for daphne in daphnes), worker.log_path]:
        log = log_path.read_text()
        assert "Traceback" not in log, log
    assert worker.process.returncode == 0, "the worker did not stop cleanly on SIGTERM"


async def open_on(client: ProxiedClient, daphnes: list[UnitDaphne]) -> int:
    """Open the client's socket through nginx; return the index of the process that took it."""
    before = [len(daphne.handshakes()) for daphne in daphnes]
    await client.open()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        taken = [n for n, daphne in enumerate(daphnes) if len(daphne.handshakes()) > before[n]]
        if taken:
            assert len(taken) == 1, taken
            return taken[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no daphne logged the handshake")


def sign_in(nginx: Nginx, username: str) -> str:
    """Log in with the form over https://, as a browser does; return the session cookie."""
    page = nginx.https("GET", "/accounts/login/")
    assert page.status == 200, page.status
    csrf_cookie = page.cookies()["csrftoken"].value
    form_token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    assert form_token
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": form_token[1]}
    # Django accepts this Origin only if the request is https (X-Forwarded-Proto) to the
    # same host and port (Host): CSRF_TRUSTED_ORIGINS is not set for these processes.
    done = nginx.https(
        "POST",
        "/accounts/login/",
        body=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Origin": nginx.origin,
            "Referer": f"{nginx.origin}/accounts/login/",
        },
    )
    assert done.status == 302, (done.status, done.body[:500])
    session = done.cookies()["sessionid"]
    assert session["secure"], "the session cookie is sent over https only"
    return f"sessionid={session.value}"


def api_token(nginx: Nginx, username: str) -> str:
    """Get a bearer token from the API over https://, as a script does."""
    reply = nginx.https(
        "POST",
        "/api/auth/token/",
        body=json.dumps({"username": username, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["token"]


async def stored_messages() -> list[tuple[int, str, str, str]]:
    return await database_sync_to_async(
        lambda: list(
            Message.objects.order_by("seq").values_list(
                "id", "sender__username", "client_id", "body"
            )
        )
    )()


@pytest.mark.services
async def test_two_users_chat_over_wss_through_nginx_one_on_each_process(
    stack, alice, bob, static_root, tmp_path
):
    nginx, daphnes = stack
    cookie = await asyncio.to_thread(sign_in, nginx, "alice")
    bob_token = await asyncio.to_thread(api_token, nginx, "bob")

    # The session cookie opens a socket only from the site's own pages, through nginx too.
    with pytest.raises(InvalidStatus) as refused:
        await ProxiedClient(
            nginx, headers={"Cookie": cookie, "Origin": "https://evil.example"}
        ).open()
    assert refused.value.response.status_code == 403
    alice_socket = ProxiedClient(
        nginx, headers={"Cookie": cookie, "Origin": f"https://{HOSTNAME}"}
    )
    bob_socket = ProxiedClient(nginx, bob_token)
    try:
        alice_on = await open_on(alice_socket, daphnes)
        # A request in between: round robin would now send the next socket to alice's
        # process; least_conn sends it to the process without an open socket.
        assert (await asyncio.to_thread(nginx.https, "GET", "/healthz")).status == 200
        bob_on = await open_on(bob_socket, daphnes)
        assert {alice_on, bob_on} == {0, 1}
        assert alice_socket.ready["user"]["username"] == "alice"
        assert bob_socket.ready["user"]["username"] == "bob"
        # daphne saw the client's own address (X-Forwarded-For from nginx), not nginx's
        # and not the one the client forged.
        for daphne in daphnes:
            assert daphne.handshakes()
            assert all(a.startswith(f"{CLIENT_ADDRESS}:") for a in daphne.handshakes())
            assert SPOOFED_FORWARDED_FOR not in daphne.access_log.read_text()

        hello = await alice_socket.request(
            send_frame("hello over wss", "a-1", to="bob"), "message.ack"
        )
        for client in (alice_socket, bob_socket):
            pushed = await client.recv_type("message.new")
            assert pushed["message"] == hello["message"]
        conversation = hello["message"]["conversation"]
        reply = await bob_socket.request(
            send_frame("hi alice", "b-1", conversation=conversation), "message.ack"
        )
        for client in (alice_socket, bob_socket):
            pushed = await client.recv_type("message.new")
            assert pushed["message"] == reply["message"]
        assert await stored_messages() == [
            (hello["message"]["id"], "alice", "a-1", "hello over wss"),
            (reply["message"]["id"], "bob", "b-1", "hi alice"),
        ]
    finally:
        await alice_socket.close()
        await bob_socket.close()

    # Static files come from STATIC_ROOT through nginx, never from daphne.
    css = await asyncio.to_thread(nginx.https, "GET", "/static/messaging/chat.css")
    assert css.status == 200
    assert css.body == (static_root / "messaging" / "chat.css").read_bytes()
    assert css.headers["Content-Type"].startswith("text/css")
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    hashed = await asyncio.to_thread(
        nginx.https,
        "GET",
        f"/static/{manifest['messaging/chat.css']}",
        headers={"Accept-Encoding": "gzip"},
    )
    assert hashed.status == 200
    assert hashed.headers["Content-Encoding"] == "gzip"
    assert "immutable" in hashed.headers["Cache-Control"]
    missing = await asyncio.to_thread(nginx.https, "GET", "/static/messaging/nothing.css")
    assert missing.status == 404
    # server_tokens off: nginx names itself without its version, in headers and pages.
    assert missing.headers["Server"] == "nginx"
    assert b"<center>nginx</center>" in missing.body
    for daphne in daphnes:
        assert "/static/" not in daphne.access_log.read_text()

    health = await asyncio.to_thread(nginx.https, "GET", "/healthz")
    assert health.status == 200 and json.loads(health.body)["status"] == "ok"
    # The worker of chat-worker@.service runs the jobs: someone who signs up with an
    # address is sent the link that verifies it.
    assert json.loads(health.body)["checks"]["jobs"] == "ok"
    signed_up = await asyncio.to_thread(
        nginx.https,
        "POST",
        "/api/auth/register/",
        headers={"Content-Type": "application/json"},
        body=json.dumps(
            {"username": "carol", "password": "a long pass phrase", "email": "carol@example.org"}
        ).encode(),
    )
    assert signed_up.status == 201, signed_up.body
    mail = tmp_path / "mail"

    def written() -> list[str]:
        # Django's file backend creates the file first and ends each message with a rule
        # of dashes: a file without it is still being written.
        texts = [path.read_text() for path in mail.iterdir()] if mail.is_dir() else []
        return [text for text in texts if text.endswith("-" * 79 + "\n")]

    deadline = time.monotonic() + 15
    while not written() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    [sent] = written()
    assert "To: carol@example.org" in sent and f"https://{HOSTNAME}/" in sent
    redirect = await asyncio.to_thread(nginx.plain_http, "/c/1/?x=1")
    assert redirect.status == 301
    assert redirect.headers["Location"] == f"https://{HOSTNAME}/c/1/?x=1"
    # Another host name gets no TLS handshake at all.
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        await asyncio.to_thread(
            nginx.https, "GET", "/", server_hostname="other.test", tls=anything
        )


@pytest.mark.services
async def test_sigterm_to_a_daphne_behind_nginx_loses_nothing_and_doubles_nothing(
    stack, alice, bob
):
    nginx, daphnes = stack
    alice_token = await database_sync_to_async(token_issue)(user=alice)
    bob_token = await database_sync_to_async(token_issue)(user=bob)
    alice_socket = ProxiedClient(nginx, alice_token)
    bob_socket = ProxiedClient(nginx, bob_token)
    try:
        alice_on = await open_on(alice_socket, daphnes)
        bob_on = await open_on(bob_socket, daphnes)
        assert alice_on != bob_on
        hello = await alice_socket.request(send_frame("hello", "a-0", to="bob"), "message.ack")
        seen = (await bob_socket.recv_type("message.new"))["message"]["seq"]
        # Bob sends just as his process is stopped: he cannot know whether it was stored.
        await bob_socket.send(send_frame("did this arrive?", "b-1", to="alice"))

        # systemctl stop chat@PORT: SIGTERM, and SIGKILL after TimeoutStopSec.
        stopping = daphnes[bob_on]
        started = time.monotonic()
        await asyncio.to_thread(stopping.stop, signal.SIGTERM)
        assert time.monotonic() - started < float(unit_setting("TimeoutStopSec"))
        assert stopping.process.returncode == 0, "daphne exits by itself on SIGTERM"
        with pytest.raises(ConnectionClosed):
            while True:
                await bob_socket.recv(timeout=5)

        for n in range(1, 4):
            await alice_socket.request(
                send_frame(f"while bob is away {n}", f"a-{n}", to="bob"), "message.ack"
            )

        # Bob's client reconnects to the same address: nginx passes the handshake to the
        # process that is still running, at the first attempt.
        bob_socket = ProxiedClient(nginx, bob_token)
        assert await open_on(bob_socket, daphnes) == alice_on
        retry = await bob_socket.request(
            send_frame("did this arrive?", "b-1", to="alice"), "message.ack"
        )
        caught_up = await sync_all(bob_socket, after=seen)

        stored = await stored_messages()
        assert len(stored) == 5, "every message once, the retried one too"
        assert {(sender, client_id) for _, sender, client_id, _ in stored} == {
            ("alice", "a-0"),
            ("alice", "a-1"),
            ("alice", "a-2"),
            ("alice", "a-3"),
            ("bob", "b-1"),
        }
        ids = [message_id for message_id, *_ in stored]
        assert retry["message"]["id"] in ids
        assert [m["id"] for m in caught_up] == [i for i in ids if i != hello["message"]["id"]]
        everything = await sync_all(alice_socket)
        assert [m["id"] for m in everything] == ids
    finally:
        await alice_socket.close()
        await bob_socket.close()


def post_token(nginx: Nginx, username: str):
    return nginx.https(
        "POST",
        "/api/auth/token/",
        body=json.dumps({"username": username, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.services
async def test_nginx_refuses_a_burst_of_token_requests_and_lets_a_normal_pace_through(
    stack, alice
):
    nginx, daphnes = stack
    # The chat's own limits are far away in the test settings: any 429 here is nginx's.
    burst = [(await asyncio.to_thread(post_token, nginx, "alice")) for _ in range(25)]
    statuses = [reply.status for reply in burst]
    # The zone's burst (10) after the first, then refusals, all in well under a second.
    assert statuses[:11] == [200] * 11, statuses
    assert statuses.count(429) >= 10, statuses
    for refused in (reply for reply in burst if reply.status == 429):
        assert refused.headers["Retry-After"] == "1"
        assert json.loads(refused.body) == {
            "detail": "too many requests from your address; slow down",
            "retry_after": 1,
        }
    # The refused requests never reached daphne (no password was hashed for them).
    reached = sum(
        daphne.access_log.read_text().count('"POST /api/auth/token/"')
        for daphne in daphnes
        if daphne.access_log.exists()
    )
    assert reached == statuses.count(200)

    # Loading the login form is not counted: only what hashes a password.
    assert (await asyncio.to_thread(nginx.https, "GET", "/accounts/login/")).status == 200
    # At about the zone's rate (1 per second), right after the burst, every request passes.
    for _ in range(4):
        await asyncio.sleep(1.1)
        assert (await asyncio.to_thread(post_token, nginx, "alice")).status == 200


# --- Files through nginx ------------------------------------------------------------------


@pytest.fixture
def upload_stack(transactional_db, tmp_path, certificate, static_root):
    """One daphne that leaves the bytes of downloads to nginx (X-Accel-Redirect)."""
    media_root = tmp_path / "media"
    daphne = UnitDaphne(
        env={
            **SERVER_ENV,
            "STATIC_ROOT": str(static_root),
            "MEDIA_ROOT": str(media_root),
            "CHAT_UPLOADS_X_ACCEL": "/internal-media/",
        },
        log_path=tmp_path / "daphne.log",
        access_log=tmp_path / "access.log",
    )
    nginx = Nginx(
        tmp_path / "nginx",
        cert=certificate,
        static_root=static_root,
        media_root=media_root,
        # The site names two processes; both lines lead to this one.
        upstream_ports=[daphne.port, daphne.port],
    )
    try:
        daphne.launch()
        nginx.start()
        daphne.wait_listening()
        yield nginx, daphne, media_root
    finally:
        nginx.stop()
        daphne.stop()
    log = daphne.log_path.read_text()
    assert "Traceback" not in log, log


def multipart_file(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "PNG")
    return out.getvalue()


@pytest.mark.services
def test_a_file_goes_up_through_nginx_and_comes_down_from_its_internal_location(
    upload_stack, alice, bob, carol
):
    from messaging.domain import services
    from messaging.domain.uploads import attach, attachable

    nginx, daphne, media_root = upload_stack
    alice_auth = {"Authorization": f"Bearer {api_token(nginx, 'alice')}"}
    bob_auth = {"Authorization": f"Bearer {api_token(nginx, 'bob')}"}
    carol_auth = {"Authorization": f"Bearer {api_token(nginx, 'carol')}"}

    body, content_type = multipart_file("teal.png", png_bytes())
    sent = nginx.https(
        "POST", "/api/uploads/", body=body, headers={**alice_auth, "Content-Type": content_type}
    )
    assert sent.status == 201, sent.body
    upload = json.loads(sent.body)["upload"]
    assert (upload["content_type"], upload["width"], upload["height"]) == ("image/png", 64, 48)

    # A body larger than a file may be: nginx answers from the headers, daphne never sees it.
    too_large = nginx.https(
        "POST",
        "/api/uploads/",
        headers={**alice_auth, "Content-Type": content_type, "Content-Length": "30000000"},
    )
    assert too_large.status == 413
    assert daphne.access_log.read_text().count('"POST /api/uploads/"') == 1

    # Unsent, the file is alice's alone; the bytes come from MEDIA_ROOT through nginx.
    assert nginx.https("GET", upload["url"], headers=bob_auth).status == 404
    mine = nginx.https("GET", upload["url"], headers=alice_auth)
    assert mine.status == 200
    (stored,) = [p for p in media_root.rglob("*.png") if p.is_file()]
    assert mine.body == stored.read_bytes()
    assert mine.headers["Content-Type"] == "image/png"
    assert mine.headers["Content-Disposition"].startswith("inline;")
    assert mine.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in mine.headers["Cache-Control"]
    assert "X-Accel-Redirect" not in mine.headers
    thumbnail = nginx.https("GET", upload["thumbnail_url"], headers=alice_auth)
    assert thumbnail.status == 200 and thumbnail.headers["Content-Type"] == "image/webp"

    # The internal location is not reachable from outside, whatever the path.
    name = stored.relative_to(media_root).as_posix()
    assert nginx.https("GET", f"/internal-media/{name}", headers=alice_auth).status == 404

    # Sent to bob: his to download too, not carol's.
    message = services.message_send(
        sender=alice, body="a photo", client_id="f-1", to="bob"
    ).message
    attach(attachable(alice.pk, [upload["id"]]), message.pk)
    theirs = nginx.https("GET", upload["url"], headers=bob_auth)
    assert theirs.status == 200 and theirs.body == stored.read_bytes()
    assert nginx.https("GET", upload["url"], headers=carol_auth).status == 404

    # A download that is not a picture is an attachment, of the type the server found.
    body, content_type = multipart_file("page.html", b"<script>alert(1)</script>")
    html = json.loads(
        nginx.https(
            "POST",
            "/api/uploads/",
            body=body,
            headers={**alice_auth, "Content-Type": content_type},
        ).body
    )["upload"]
    download = nginx.https("GET", html["url"], headers=alice_auth)
    assert download.body == b"<script>alert(1)</script>"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
