"""Helpers the tests share: ports, HTTP with JSON, API clients and frames.

Only the standard library at import time, so that the soak and the benchmark can use the
network helpers without setting Django up; the Django ones import it when called.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """Return a TCP port of `host` that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_port(
    port: int,
    *,
    timeout: float,
    process: subprocess.Popen | None = None,
    name: str = "server",
    host: str = HOST,
) -> None:
    """Wait until something listens on the port; fail when `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start listening on {port}")


def http_get_json(url: str, *, token: str | None = None) -> tuple[int, Any]:
    """GET a JSON document; return the status and the body, for errors too."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def http_post_json(url: str, payload: Any) -> Any:
    """POST JSON and return the JSON answer; raise on an error status."""
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def register(base_url: str, username: str, password: str) -> dict[str, Any]:
    """Register a user over the API; return the user with its `token`."""
    answer = http_post_json(
        f"{base_url}/api/auth/register/", {"username": username, "password": password}
    )
    return {**answer["user"], "token": answer["token"]}


def send_frame(body: str, client_id: str, *, to: str | None = None, conversation=None) -> dict:
    """Build a `message.send` frame."""
    frame = {"type": "message.send", "body": body, "client_id": client_id}
    if to is not None:
        frame["to"] = to
    if conversation is not None:
        frame["conversation"] = conversation
    return frame


def api(user):
    """Return a Django test client that calls the API with a bearer token of the user."""
    from django.test import Client

    from messaging.domain.tokens import token_issue

    return Client(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")


def post_json(client, path: str, data: Any, **extra):
    """POST JSON with a Django test client."""
    return client.post(path, json.dumps(data), content_type="application/json", **extra)


async def token_for(user) -> str:
    """Issue a bearer token for the user, from async code."""
    from channels.db import database_sync_to_async

    from messaging.domain.tokens import token_issue

    return await database_sync_to_async(token_issue)(user=user)
