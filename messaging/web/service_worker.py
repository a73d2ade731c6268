"""/sw.js: the service worker (pushes, the app shell offline), served from the site's root.

A service worker controls the paths under its own URL, so it is served here, not under
/static/. Its source is static/sw.js, apart from the pages' modules in static/messaging/:
it imports none of them, and they do not import it.

Served, it carries the app shell's files under their URLs (hashed in production) and a
version drawn from their contents: a deploy that changes any of them changes the worker's
bytes, so browsers install the new one, which fills a new cache and drops the old.
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

SOURCE = "sw.js"
# The static files a page of the chat loads: its modules, styles, emoji list and icons.
SHELL_PREFIXES = ("messaging/", "icons/")
# The lines of static/sw.js that are filled in when it is served.
VERSION_LINE = 'const VERSION = "dev";'
ASSETS_LINE = "const SHELL_ASSETS = [];"


def _read(name: str) -> bytes:
    path = finders.find(name)
    if path is None:
        raise FileNotFoundError(name)
    with open(path, "rb") as file:
        return file.read()


def shell_files() -> list[str]:
    """Name the static files of the app shell, sorted."""
    names: set[str] = set()
    for finder in finders.get_finders():
        for name, _storage in finder.list(["*.map", ".*"]):
            name = name.replace("\\", "/")
            if name.startswith(SHELL_PREFIXES):
                names.add(name)
    return sorted(names)


def _build() -> bytes:
    files = shell_files()
    urls = [staticfiles_storage.url(name) for name in files]
    digest = hashlib.sha256()
    for name, url in zip(files, urls, strict=True):
        digest.update(url.encode() + b"\0" + hashlib.sha256(_read(name)).digest())
    source = _read(SOURCE).decode()
    digest.update(source.encode())
    if source.count(VERSION_LINE) != 1 or source.count(ASSETS_LINE) != 1:
        raise ValueError(f"{SOURCE} must hold {VERSION_LINE!r} and {ASSETS_LINE!r} once")
    source = source.replace(
        VERSION_LINE, f"const VERSION = {json.dumps(digest.hexdigest()[:16])};"
    )
    source = source.replace(ASSETS_LINE, f"const SHELL_ASSETS = {json.dumps(urls)};")
    return source.encode()


_built = functools.lru_cache(maxsize=1)(_build)


def worker_source() -> bytes:
    """The worker as served: built once, or on every request while files change (DEBUG)."""
    return _build() if settings.DEBUG else _built()


@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """Serve the service worker for the whole site, checked for updates on each load."""
    response = HttpResponse(worker_source(), content_type="text/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    # Browsers compare it with the installed one whenever it is fetched: never a stale copy.
    response["Cache-Control"] = "no-cache"
    return response
