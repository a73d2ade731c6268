"""Production static files: the client's ES modules load each other by their hashed names."""

import json
import re
from pathlib import Path, PurePosixPath

import pytest
from django.core.management import call_command

from messaging.web import service_worker

# `import … from "./x.js";`, `export … from "./x.js";` and `import("./x.js")`.
IMPORT = re.compile(
    r"""(?:\bimport|\bexport)\b[^;]*?\bfrom\s*["']([^"']+)["']\s*;|\bimport\(\s*["']([^"']+)["']\s*\)"""
)
HASHED = re.compile(r"\.[0-9a-f]{12}\.js$")
HASHED_ANY = re.compile(r"\.[0-9a-f]{12}\.\w+$")


@pytest.fixture
def collected(settings, tmp_path) -> Path:
    """Run collectstatic with the production storage into a fresh folder."""
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "chatsite.storage.ChatStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    return tmp_path


def test_module_imports_are_rewritten_to_hashed_files_that_exist(collected):
    paths = json.loads((collected / "staticfiles.json").read_text())["paths"]
    # The pages' entry points: the chat, the settings page, and the service worker's
    # registration on every page of a signed-in person.
    entries = [paths[f"messaging/{name}.js"] for name in ("main", "settings", "app")]
    assert all(HASHED.search(entry) for entry in entries), entries

    seen: set[str] = set()
    waiting = list(entries)
    while waiting:
        module = waiting.pop()
        if module in seen:
            continue
        seen.add(module)
        source = (collected / module).read_text()
        for match in IMPORT.finditer(source):
            target = match.group(1) or match.group(2)
            assert HASHED.search(target), f"{module} imports {target} by its plain name"
            resolved = str(PurePosixPath(module).parent / target)
            resolved = str(PurePosixPath(*_normalise(resolved.split("/"))))
            assert (collected / resolved).is_file(), f"{module} imports {target}, which is missing"
            waiting.append(resolved)

    # Every module of the client is reached from an entry point, under its hashed name.
    client = {name for name in paths if name.startswith("messaging/") and name.endswith(".js")}
    assert {paths[name] for name in client} <= seen
    assert any("/net/socket." in name for name in seen) and any(
        "/state/outbox." in name for name in seen
    )


def test_the_service_worker_caches_a_deploys_hashed_files(collected):
    paths = json.loads((collected / "staticfiles.json").read_text())["paths"]
    source = service_worker._build().decode()
    assets = json.loads(re.search(r"const SHELL_ASSETS = (\[.*?\]);", source).group(1))
    assert "/static/" + paths["messaging/main.js"] in assets
    assert "/static/" + paths["icons/icon-512.png"] in assets
    for url in assets:
        assert HASHED_ANY.search(url), f"{url} is cached under a name that a deploy reuses"
        assert (collected / url.removeprefix("/static/")).is_file(), url


def _normalise(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part not in ("", "."):
            out.append(part)
    return out


def test_the_chat_page_loads_main_as_a_module_without_inline_scripts(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert '<script type="module" src="/static/messaging/main.js"></script>' in html
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts), scripts
