"""Settings for the test suite: the real settings, with test-friendly defaults."""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "0")
os.environ.setdefault("CHAT_SEND_RATE", "1000/1s")
os.environ.setdefault("CHAT_TYPING_RATE", "1000/1s")
os.environ.setdefault("CHAT_SYNC_RATE", "1000/1s")
os.environ.setdefault("CHAT_PING_RATE", "1000/1s")
os.environ.setdefault("CHAT_READ_RATE", "1000/1s")
os.environ.setdefault("CHAT_EDIT_RATE", "1000/1s")
os.environ.setdefault("CHAT_REACTION_RATE", "1000/1s")
os.environ.setdefault("CHAT_CONNECT_RATE", "1000/1s")
os.environ.setdefault("CHAT_UPLOAD_RATE", "1000/1s")
os.environ.setdefault("CHAT_DOWNLOAD_RATE", "1000/1s")
os.environ.setdefault("CHAT_CONVERSATION_RATE", "100000/3600s")
os.environ.setdefault("CHAT_REGISTER_RATE", "100000/3600s")
for _rate in ("API_READ", "SEARCH", "USER_LOOKUP", "GROUP_CHANGE", "API_WRITE", "LOGIN"):
    os.environ.setdefault(f"CHAT_{_rate}_RATE", "100000/60s")
os.environ.setdefault("CHAT_LOGIN_TOTAL_RATE", "100000/60s")
# Tests of faults read /healthz right after breaking or mending a service.
os.environ.setdefault("CHAT_HEALTH_CACHE_SECONDS", "0")
# Freezing the collector in the middle of the suite would keep that test's objects forever.
os.environ.setdefault("GC_TUNING", "0")
# Counters of earlier runs in the same Redis must not count against this one; daphne
# processes started by the tests inherit the variables and so share the counters.
# So must the channel layer's groups: the test database is made again for each run and its
# user ids start again at 1, so a socket an earlier run left in `user.7`'s group would be a
# member of this run's user 7 (for a day, the layer's group expiry).
# Each worker of a parallel run (pytest-xdist) has a database of its own whose ids overlap
# the other's, and inherits the prefixes its controller chose: it chooses its own, or one
# worker's revoked token would close the other's sockets of the same user id.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if os.environ.get("CHAT_TEST_PREFIXES_WORKER", _WORKER) != _WORKER:
    os.environ.pop("CHAT_RATE_LIMIT_PREFIX", None)
    os.environ.pop("REDIS_PREFIX", None)
os.environ["CHAT_TEST_PREFIXES_WORKER"] = _WORKER
os.environ.setdefault("CHAT_RATE_LIMIT_PREFIX", f"test-rl-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("REDIS_PREFIX", f"test-{uuid.uuid4().hex[:12]}")

from chatsite.settings import *  # noqa: E402, F403

# Hashing passwords slowly protects real accounts, not test users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Templates resolve {% static %} without a collectstatic manifest.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tests speak plain HTTP to the test client and to live daphne processes.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
