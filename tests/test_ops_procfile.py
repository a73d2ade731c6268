"""deploy/Procfile under honcho: one daphne dying leaves the chat up, and it comes back."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.live import ROOT

HONCHO = Path(sys.executable).parent / "honcho"


def healthy(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def daphne_pid(port: int) -> int | None:
    """Return the pid of the daphne process serving a port, if one runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The interpreter, then .venv/bin/daphne (a script); not the shell that wraps it.
        if any(a.endswith(b"/daphne") for a in argv[:2]) and str(port).encode() in argv:
            return int(entry.name)
    return None


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def two_free_ports() -> int:
    """Return a port P such that P and P + 1 are both free (honcho numbers them so)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and daphne_pid(port) is None:
            try:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise AssertionError("no two consecutive free ports")


@pytest.fixture
def honcho(tmp_path):
    """Run deploy/Procfile with two daphne processes as the operations doc says."""
    env_file = tmp_path / "chat.env"
    env_file.write_text("")
    port = two_free_ports()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # /healthz only asks the database for SELECT 1 and the in-memory layer for an echo.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.sqlite3'}",
        "REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(tmp_path / "honcho.log", "wb")
    process = subprocess.Popen(
        [
            str(HONCHO),
            "start",
            "-f",
            "deploy/Procfile",
            "-d",
            ".",
            "-e",
            str(env_file),
            "-p",
            str(port),
            "-c",
            "web=2",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, (port, port + 1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for each in (port, port + 1):
            if (pid := daphne_pid(each)) is not None:
                os.kill(pid, signal.SIGKILL)
        log.close()


def test_one_daphne_dying_leaves_the_other_serving_and_it_comes_back(honcho, tmp_path):
    process, ports = honcho
    wait_until(lambda: all(healthy(port) for port in ports), 60, "both processes answer")
    first = daphne_pid(ports[0])
    assert first is not None
    # A shell started by hand allows 1024 open files: far too few for a process of sockets.
    wanted = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert open_files_limit(first) >= wanted

    os.kill(first, signal.SIGKILL)
    assert healthy(ports[1]), "the other process stopped serving"
    assert process.poll() is None, (tmp_path / "honcho.log").read_text()
    wait_until(lambda: healthy(ports[0]), 30, "the killed process is back")
    assert daphne_pid(ports[0]) not in (None, first)
    assert healthy(ports[1]) and process.poll() is None

    process.send_signal(signal.SIGTERM)
    process.wait(20)
    assert all(daphne_pid(port) is None for port in ports), "a daphne outlived honcho"
    assert "Traceback" not in (tmp_path / "honcho.log").read_text()
