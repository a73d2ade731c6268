"""The installable app: its manifest and icons, the service worker's shell and version, and
a logout that has the browser drop what it keeps of the chat."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from PIL import Image

from messaging.web import service_worker

pytestmark = pytest.mark.django_db


def chat_config(html: str) -> dict:
    found = re.search(r'id="chat-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no chat-config on the page"
    return json.loads(found.group(1))


def test_the_manifest_describes_an_installable_app_with_its_icons(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["name"] == manifest["short_name"] == "Chat"
    assert manifest["start_url"] == manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"] and manifest["background_color"]
    dark = manifest["user_preferences"]["color_scheme_dark"]
    assert dark["theme_color"] != manifest["theme_color"]
    sizes = {}
    for icon in manifest["icons"]:
        served = client.get(icon["src"])
        assert served.status_code == 200, icon["src"]
        image = Image.open(io.BytesIO(b"".join(served.streaming_content)))
        assert image.format == "PNG"
        assert f"{image.width}x{image.height}" == icon["sizes"]
        sizes.setdefault(icon.get("purpose", "any"), []).append(icon["sizes"])
    assert sizes == {"any": ["192x192", "512x512"], "maskable": ["512x512"]}


def test_the_manifest_speaks_the_browsers_language(db):
    manifest = Client(HTTP_ACCEPT_LANGUAGE="ar").get("/manifest.webmanifest").json()
    assert manifest["lang"] == "ar" and manifest["dir"] == "rtl"
    assert (
        manifest["description"] != (Client().get("/manifest.webmanifest").json()["description"])
    ), "the description is translated"


def test_every_page_links_the_manifest_and_signed_in_pages_register_the_worker(client, alice):
    login = client.get("/accounts/login/").content.decode()
    assert 'rel="manifest" href="/manifest.webmanifest"' in login
    assert 'rel="apple-touch-icon"' in login
    assert "messaging/app.js" not in login, "nothing is kept for someone not signed in"
    client.force_login(alice)
    for path in ("/", "/settings/"):
        page = client.get(path).content.decode()
        assert 'rel="manifest"' in page, path
        assert 'src="/static/messaging/app.js" data-service-worker="/sw.js"' in page, path


def test_the_worker_names_the_shells_files_and_a_version_drawn_from_them(client, monkeypatch):
    body = client.get("/sw.js").content.decode()
    version = re.search(r'const VERSION = "([0-9a-f]{16})";', body)
    assets = json.loads(re.search(r"const SHELL_ASSETS = (\[.*?\]);", body).group(1))
    assert version, "the version is written in"
    for name in ("messaging/main.js", "messaging/chat.css", "icons/icon-192.png"):
        assert f"/static/{name}" in assets, name
    # An offline start imports every module of the client, those in nested folders too.
    static = Path(settings.BASE_DIR) / "static"
    modules = sorted((static / "messaging").rglob("*.js"))
    assert any(len(module.relative_to(static).parts) > 3 for module in modules)
    for module in modules:
        assert f"/static/{module.relative_to(static).as_posix()}" in assets, module
    assert not any("/api/" in url for url in assets)
    # A deploy that changes one file gives browsers a new worker, with a cache of its own.
    read = service_worker._read
    monkeypatch.setattr(
        service_worker,
        "_read",
        lambda name: read(name) + (b"/* changed */" if name == "messaging/main.js" else b""),
    )
    rebuilt = service_worker._build().decode()
    assert version.group(0) not in rebuilt
    assert re.search(r'const VERSION = "[0-9a-f]{16}";', rebuilt)
    assert finders.find("sw.js")


def test_the_shell_is_the_chat_page_without_data_for_the_signed_in_only(client, alice, bob):
    signed_out = client.get("/shell/")
    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    response = client.get("/shell/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    config = chat_config(html)
    assert config["shell"] is True
    assert config["user"]["username"] == "alice"
    assert config["history"] == [] and config["conversation"] is None
    assert '<script id="chat-conversations" type="application/json">[]</script>' in html
    assert "shell" not in chat_config(client.get("/").content.decode())


def test_logging_out_has_the_browser_clear_what_it_keeps(client, alice):
    client.force_login(alice)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert client.get("/").status_code == 302, "signed out"
