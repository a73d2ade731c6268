"""The production set-up of deploy/, run for a test: nginx with the site file, TLS, daphne
processes started with the systemd unit's arguments, and clients that come through nginx."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from email.message import Message as Headers
from http.cookies import SimpleCookie
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect

from tests.helpers import free_port, wait_for_port
from tests.live import ROOT, Daphne, LiveClient

DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "nginx" / "chat.conf"
UNIT = DEPLOY / "systemd" / "chat@.service"
WORKER_UNIT = DEPLOY / "systemd" / "chat-worker@.service"
PROCFILE = DEPLOY / "Procfile"
ENV_EXAMPLE = DEPLOY / "chat.env.example"
CHAT_MANAGE = DEPLOY / "chat-manage"

HOSTNAME = "chat.test"
# Clients connect from this loopback address while nginx and daphne talk over 127.0.0.1, so
# the address daphne reports shows that it came from X-Forwarded-For.
CLIENT_ADDRESS = "127.0.0.2"
# Sent by every client: nginx must replace it, not pass it on.
SPOOFED_FORWARDED_FOR = "203.0.113.7"

PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def nginx_binary() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_nginx() -> str:
    """Return nginx's path, installing Debian's package first when it is missing."""
    found = nginx_binary()
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("nginx is not installed and only root may apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt run rather than fail on its lock.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q"]
    install = [*apt, "install", "-y", "--no-install-recommends", "nginx"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run([*apt, "update"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    found = nginx_binary()
    if not found:
        raise RuntimeError("apt-get installed nginx but there is no nginx binary")
    return found


def self_signed_certificate(folder: Path, hostname: str = HOSTNAME) -> tuple[Path, Path]:
    """Make a certificate for the host name (with subjectAltName); return (cert, key)."""
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "2",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def render_site(
    *,
    listen_https: str,
    listen_http: str,
    cert: Path,
    key: Path,
    static_root: Path,
    upstream_ports: list[int],
    media_root: Path | None = None,
) -> str:
    """Fill in deploy/nginx/chat.conf as docs/operations.md tells ops to, for this machine.

    `media_root` defaults to a `media` folder beside `static_root`.
    """
    text = SITE.read_text()
    values = {
        "@SERVER_NAME@": HOSTNAME,
        "@LISTEN_HTTPS@": listen_https,
        "@LISTEN_HTTP@": listen_http,
        "@TLS_CERT@": str(cert),
        "@TLS_KEY@": str(key),
        "@STATIC_ROOT@": str(static_root),
        "@MEDIA_ROOT@": str(media_root or static_root.with_name("media")),
    }
    for placeholder, value in values.items():
        assert placeholder in text, f"{placeholder} is not in {SITE}"
        text = text.replace(placeholder, value)
    # The comments name the placeholders too; only the directives must be free of them.
    directives = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert not PLACEHOLDER.search(directives), PLACEHOLDER.search(directives)

    # One `server 127.0.0.1:PORT ...;` line per daphne process, in the upstream block.
    upstream = re.search(r"upstream chat_daphne \{.*?\n\}", text, re.S)
    assert upstream, "no upstream chat_daphne block"
    block = upstream.group(0)
    servers = re.findall(r"^\s*server 127\.0\.0\.1:(\d+)\b", block, re.M)
    assert len(servers) == len(upstream_ports), servers
    ports = iter(upstream_ports)
    block = re.sub(
        r"^(\s*server 127\.0\.0\.1:)\d+", lambda m: f"{m.group(1)}{next(ports)}", block, flags=re.M
    )
    return text[: upstream.start()] + block + text[upstream.end() :]


def unit_setting(name: str, unit: Path = UNIT) -> str:
    """Return the value of a `Name=` line of deploy/systemd/chat@.service (or `unit`)."""
    for line in unit.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.removeprefix(f"{name}=")
    raise KeyError(name)


def unit_daphne_arguments(port: int) -> list[str]:
    """Return daphne's arguments as the unit's ExecStart gives them to instance `port`."""
    program, *arguments = shlex.split(unit_setting("ExecStart"))
    assert program == "/srv/chat/.venv/bin/daphne", program
    defaults = dict(value.split("=", 1) for value in shlex.split(unit_setting("Environment")))
    expanded = []
    for argument in arguments:
        argument = argument.replace("%i", str(port))
        for name, value in defaults.items():
            argument = argument.replace(f"${{{name}}}", value)
        expanded.append(argument)
    return expanded


class UnitDaphne(Daphne):
    """A daphne process run with the arguments of deploy/systemd/chat@.service.

    Its access log (one line per handshake, with the client's address as daphne sees it)
    tells which process took a socket and from which address.
    """

    def __init__(self, *, env: dict[str, str], log_path: Path, access_log: Path):
        super().__init__(env=env, log_path=log_path)
        self.access_log = access_log

    def launch(self) -> UnitDaphne:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                *unit_daphne_arguments(self.port),
                "--access-log",
                str(self.access_log),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_listening(self, timeout: float = 20) -> UnitDaphne:
        wait_for_port(self.port, timeout=timeout, process=self.process, name="daphne")
        return self

    def start(self, timeout: float = 20) -> UnitDaphne:
        return self.launch().wait_listening(timeout)

    def handshakes(self) -> list[str]:
        """Return the client address of every accepted WebSocket handshake, in order."""
        if not self.access_log.exists():
            return []
        return re.findall(r'^(\S+) .*"WSCONNECT /ws/chat/"', self.access_log.read_text(), re.M)


def unit_worker_command(instance: int, metrics_port: int) -> list[str]:
    """Return the worker unit's ExecStart for an instance, its metrics on a port of our own."""
    program, *arguments = shlex.split(unit_setting("ExecStart", WORKER_UNIT))
    assert program == "/srv/chat/.venv/bin/python", program
    arguments = [argument.replace("%i", str(instance)) for argument in arguments]
    at = arguments.index("--metrics-port")
    arguments[at + 1] = str(metrics_port)
    return [sys.executable, *arguments]


class UnitWorker:
    """A `manage.py chat_worker` process run as deploy/systemd/chat-worker@.service runs it."""

    def __init__(self, *, env: dict[str, str], log_path: Path):
        self.metrics_port = free_port()
        self.env = {**Daphne(env=env).env}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> UnitWorker:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            unit_worker_command(1, self.metrics_port),
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.metrics_port, timeout=timeout, process=self.process, name="worker")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@dataclass
class Reply:
    status: int
    headers: Headers
    body: bytes

    def cookies(self) -> SimpleCookie:
        jar = SimpleCookie()
        for header in self.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return jar


def _read(connection: http.client.HTTPConnection) -> Reply:
    response = connection.getresponse()
    return Reply(response.status, response.headers, response.read())


class Nginx:
    """nginx of the test's own: the rendered site on free ports of 127.0.0.1, everything
    (pid, logs, temporary files) in one folder; the system's nginx is left alone."""

    def __init__(
        self,
        folder: Path,
        *,
        cert: Path,
        static_root: Path,
        upstream_ports: list[int],
        media_root: Path | None = None,
    ):
        self.binary = ensure_nginx()
        self.folder = folder
        self.cert = cert
        self.https_port = free_port()
        self.http_port = free_port()
        self.site = render_site(
            listen_https=f"127.0.0.1:{self.https_port}",
            listen_http=f"127.0.0.1:{self.http_port}",
            cert=cert,
            key=cert.with_name("privkey.pem"),
            static_root=static_root,
            upstream_ports=upstream_ports,
            media_root=media_root,
        )
        self.process: subprocess.Popen | None = None

    @property
    def conf(self) -> Path:
        return self.folder / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    @property
    def wss_url(self) -> str:
        return f"wss://{HOSTNAME}:{self.https_port}/ws/chat/"

    @property
    def origin(self) -> str:
        """The Origin of the site's pages as a browser here sends it."""
        return f"https://{HOSTNAME}:{self.https_port}"

    def write_conf(self) -> None:
        (self.folder / "sites").mkdir(parents=True, exist_ok=True)
        (self.folder / "sites" / "chat.conf").write_text(self.site)
        temp = self.folder / "temp"
        temp.mkdir(exist_ok=True)
        # Workers run as the master's user when that is root, so they can read pytest's
        # private folders; Debian's nginx.conf says `user www-data` instead.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"""{user}worker_processes 2;
daemon off;
pid {self.folder}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {self.folder}/access.log;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {self.folder}/sites/chat.conf;
}}
"""
        )

    def start(self) -> Nginx:
        self.write_conf()
        command = [self.binary, "-p", str(self.folder), "-e", str(self.error_log)]
        check = subprocess.run(
            [*command, "-t", "-c", str(self.conf)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [*command, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.https_port, timeout=10, process=self.process, name="nginx")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def client_tls(self) -> ssl.SSLContext:
        """A TLS context that trusts this nginx's self-signed certificate, and nothing else."""
        return ssl.create_default_context(cafile=str(self.cert))

    def https(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        server_hostname: str = HOSTNAME,
        tls: ssl.SSLContext | None = None,
    ) -> Reply:
        """Make one request over TLS to nginx, from CLIENT_ADDRESS; return the read response."""
        raw = socket.create_connection(
            ("127.0.0.1", self.https_port), timeout=10, source_address=(CLIENT_ADDRESS, 0)
        )
        try:
            wrapped = (tls or self.client_tls()).wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        connection = http.client.HTTPConnection(HOSTNAME, self.https_port, timeout=10)
        connection.sock = wrapped
        try:
            connection.request(method, path, body=body, headers=headers or {})
            return _read(connection)
        finally:
            connection.close()

    def plain_http(self, path: str) -> Reply:
        """GET over plain HTTP from nginx's redirecting port."""
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": HOSTNAME})
            return _read(connection)
        finally:
            connection.close()


class ProxiedClient(LiveClient):
    """A WebSocket client that comes through nginx over wss:// from CLIENT_ADDRESS.

    It authenticates with a bearer token, or with whatever `headers` say (a session cookie
    and an Origin), and always sends a forged X-Forwarded-For that nginx must overwrite.
    """

    def __init__(self, nginx: Nginx, token: str = "", *, headers: dict[str, str] | None = None):
        super().__init__(nginx.wss_url, token)
        self.nginx = nginx
        self.headers = headers or {}

    async def open(self) -> ProxiedClient:
        headers = {"X-Forwarded-For": SPOOFED_FORWARDED_FOR, **self.headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.ws = await ws_connect(
            self.url,
            additional_headers=headers,
            ssl=self.nginx.client_tls(),
            # The URL names chat.test (Host header, SNI, certificate check); connect to nginx.
            host="127.0.0.1",
            local_addr=(CLIENT_ADDRESS, 0),
            proxy=None,
            open_timeout=10,
        )
        self.ready = await self.recv()
        assert self.ready["type"] == "ready", self.ready
        return self
