"""Uploads in an S3-compatible bucket: two daphne processes, each with a folder of its own,
share every file through the bucket, and a deleted message's files leave it
(docs/operations.md, "S3").

The test runs its own S3-compatible server (moto's) on a free port of 127.0.0.1 and stops
it by its process id.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from channels.db import database_sync_to_async
from PIL import Image

from tests.helpers import free_port, send_frame, token_for, wait_for_port
from tests.live import Daphne, download, live_client, upload_over_http
from tests.test_uploads import png

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BUCKET = "chat-files"
PREFIX = "uploads"
KEYS = {"AWS_ACCESS_KEY_ID": "chat-test", "AWS_SECRET_ACCESS_KEY": "chat-test-secret"}


@pytest.fixture
def s3(tmp_path: Path):
    """An S3-compatible server with an empty bucket; yield its URL and a client of it."""
    port = free_port()
    with open(tmp_path / "s3.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=20, process=process, name="S3 server")
        url = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield url, client
    finally:
        process.kill()
        process.wait(5)


def stored_keys(client) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def test_two_processes_share_files_through_the_bucket_and_a_delete_removes_them(
    s3, tmp_path, alice, bob
):
    url, client = s3
    folders = [tmp_path / f"media{n}" for n in range(2)]
    servers = [
        Daphne(
            env={
                "CHAT_UPLOADS_STORAGE": "s3",
                "CHAT_S3_BUCKET": BUCKET,
                "CHAT_S3_ENDPOINT_URL": url,
                "CHAT_S3_REGION": "us-east-1",
                "CHAT_S3_PREFIX": PREFIX,
                "MEDIA_ROOT": str(folder),
                **KEYS,
            },
            log_path=tmp_path / f"daphne{n}.log",
        )
        for n, folder in enumerate(folders)
    ]
    alice_socket = bob_socket = None
    try:
        for server in servers:
            server.start()
        alice_token, bob_token = await token_for(alice), await token_for(bob)
        upload = await database_sync_to_async(upload_over_http)(
            servers[0], alice_token, "harbour.png", png((120, 80))
        )
        # The picture and its thumbnail are in the bucket, under the prefix.
        assert len(await database_sync_to_async(stored_keys)(client)) == 2

        alice_socket = await live_client(servers[0], alice)
        bob_socket = await live_client(servers[1], bob)
        photo = {**send_frame("the harbour", "s3-1", to="bob"), "attachments": [upload["id"]]}
        sent = (await alice_socket.request(photo, "message.ack"))["message"]
        [attachment] = (await bob_socket.recv_type("message.new"))["message"]["attachments"]

        # Bob's process never saw the upload, and serves it from the bucket.
        status, content_type, body = await database_sync_to_async(download)(
            servers[1], bob_token, attachment["url"]
        )
        assert (status, content_type) == (200, "image/png")
        assert Image.open(io.BytesIO(body)).size == (120, 80)
        status, content_type, body = await database_sync_to_async(download)(
            servers[1], bob_token, attachment["thumbnail_url"]
        )
        assert status == 200 and content_type.startswith("image/")
        Image.open(io.BytesIO(body)).verify()
        assert not any(path.is_file() for folder in folders for path in folder.rglob("*"))

        await alice_socket.send({"type": "message.delete", "id": sent["id"]})
        await bob_socket.recv_type("message.updated")
        for server, token in zip(servers, (alice_token, bob_token), strict=True):
            status, _, _ = await database_sync_to_async(download)(server, token, attachment["url"])
            assert status == 404
        assert await database_sync_to_async(stored_keys)(client) == []
    finally:
        for socket in (alice_socket, bob_socket):
            if socket is not None:
                await socket.close()
        for server in servers:
            server.stop()
    for n in range(2):
        log = (tmp_path / f"daphne{n}.log").read_text()
        assert "Traceback" not in log, log
