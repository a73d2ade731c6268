"""Logs: with LOG_FORMAT=json every line a daphne process writes is one JSON object, its
access lines included, with times in ISO 8601 UTC; plain lines carry the same times."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from chatsite.logging_setup import PlainFormatter
from tests.helpers import token_for
from tests.live import Daphne, LiveClient

UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def get(url: str, **headers: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.services
async def test_with_log_format_json_every_line_of_a_process_is_json_with_utc_times(
    transactional_db, tmp_path, alice
):
    server = Daphne(env={"LOG_FORMAT": "json"}, log_path=tmp_path / "daphne.log")
    token = await token_for(alice)
    await asyncio.to_thread(server.start)
    try:
        assert await asyncio.to_thread(get, f"{server.http_url}/healthz") == 200
        assert await asyncio.to_thread(get, f"{server.http_url}/no/such/page/") == 404
        foreign = await asyncio.to_thread(get, f"{server.http_url}/", Host="evil.example")
        assert foreign == 400
        client = await LiveClient(server.ws_url, token).open()
        await client.request({"type": "ping"}, "pong")
        await client.close()
        with pytest.raises(InvalidStatus):
            await LiveClient(server.ws_url, "not-a-token").open()
        await asyncio.sleep(0.5)  # the close is logged once the socket's clean-up ran
    finally:
        await asyncio.to_thread(server.stop)

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not JSON: {line}")
    for record in records:
        assert UTC_TIME.fullmatch(record["time"]), record
        assert {"level", "logger", "message"} <= record.keys(), record

    access = [r for r in records if r["logger"] == "daphne.access"]
    by_request = {(r["request"], r["status"]) for r in access}
    assert ("GET /healthz", 200) in by_request, access
    assert ("GET /no/such/page/", 404) in by_request, access
    assert ("GET /", 400) in by_request, access
    requests = {r["request"] for r in access}
    assert {"WSCONNECT /ws/chat/", "WSDISCONNECT /ws/chat/", "WSREJECT /ws/chat/"} <= requests
    # A socket's arrival is not a line of its own: its outcome is.
    assert not any(request.startswith("WSCONNECTING") for request in requests), requests
    assert all(r["client"].startswith("127.0.0.1:") for r in access)
    # The application's own lines are there too, as JSON.
    assert any(r["message"].startswith("socket ") for r in records), records
    assert any(r["logger"] == "django.security.DisallowedHost" for r in records)
    assert token not in server.log_path.read_text()


def test_plain_lines_carry_the_same_utc_times():
    record = logging.LogRecord("chat", logging.INFO, __file__, 1, "hello", None, None)
    record.created = 1796464800.25  # 2026-12-05T10:00:00.250Z
    line = PlainFormatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)
    assert line == "2026-12-05T10:00:00.250Z INFO chat hello"
