"""Settings for the chat site, read from the environment (see docs/operations.md)."""

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)

VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var")


def _development_secret_key() -> str:
    """Return this checkout's development key, made on first use and kept in var/."""
    path = Path(VAR_DIR) / "dev-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
    return path.read_text().strip()


if DEBUG:
    # Kept on disk so that sessions survive restarts and several processes agree.
    SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret_key()
else:
    SECRET_KEY = env.str("SECRET_KEY")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "csp",
    # Background jobs: Django's tasks API, its jobs stored in the database.
    "django_tasks",
    "django_tasks_db",
    "messaging",
]

MIDDLEWARE = [
    # First: counts and times every request (messaging/ops/http_metrics.py).
    "messaging.ops.http_metrics.http_metrics",
    # /healthz, and /metrics to METRICS_ALLOWED_NETWORKS, answered whatever the Host (each
    # process is probed on its own address), before anything reads it.
    "messaging.ops.probes.probes",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the one chosen on the settings page (its cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Sync only, and under every middleware but axes: Django then runs all above it in
    # sync mode, in one thread, where in async mode each of their hooks would hop to a
    # thread and back.
    "messaging.web.cache_control.NoStoreMiddleware",
    # A view that cannot reach the database: 503 and a retry rather than a 500 (sync only).
    "messaging.web.unavailable.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins for a username and address after repeated failures.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_COOLOFF_HOURS", default=0.25)
# Lock a username only from the address that guesses, so nobody can lock others out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "messaging.web.http.lockout_response"
AXES_VERBOSE = False

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "messaging.web.context_processors.chat_settings",
            ],
        },
    },
]

ASGI_APPLICATION = "chatsite.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
# Under ASGI every sync hop may run on a different thread: keep no connection between
# requests, so a restarted database never hands out a dead one.
_db["CONN_MAX_AGE"] = 0
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            # Take the write lock at BEGIN: a read-then-write transaction cannot then
            # fail with "database is locked" halfway through.
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _options = _db.setdefault("OPTIONS", {})
    # Fail fast when PostgreSQL is down so a send can answer `unavailable`.
    _options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3))
    # Django's backend, and with the pool a connection the server may have ended is tested
    # before it is lent, so the first request after a restart gets a live one; the others
    # are lent without a round trip (chatsite/postgresql/base.py).
    _db["ENGINE"] = "chatsite.postgresql"
    if env.bool("DATABASE_POOL", default=True):
        # psycopg's pool instead of a new connection per database hop.
        _options["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=20),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5),
            # A connection lost with PostgreSQL is retried by the pool with a doubling wait
            # (1, 2, 4, 8 s...): after an outage it could come back seconds after the
            # server. Given up soon, it is opened afresh when a request needs it.
            "reconnect_timeout": env.float("DATABASE_POOL_RECONNECT_TIMEOUT", default=3),
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Several Redis servers, separated by commas, shard the channel layer between them.
REDIS_URLS = [url.strip() for url in REDIS_URL.split(",") if url.strip()]
# Above channels-redis's 5 s blocking pop, so an idle socket's read never times out.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=10.0)
# Put before every key the chat writes in Redis (the channel layer's groups and channels,
# the rate limits' counters): sites that share one Redis server each need their own, or
# a push to user 7 of one site reaches user 7 of the other.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="")
if not re.fullmatch(r"[A-Za-z0-9_.-]{0,40}", REDIS_PREFIX):
    raise ImproperlyConfigured("REDIS_PREFIX: at most 40 letters, digits, '.', '_' or '-'")
_REDIS_KEYS = f"{REDIS_PREFIX}:" if REDIS_PREFIX else ""


def _sentinel_address(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ImproperlyConfigured(f"REDIS_SENTINELS: {text.strip()!r} is not host:port")
    return host, int(port)


# Redis Sentinel (docs/operations.md, "Redis failover"): the sentinels (host:port, separated
# by commas) that say which server is the primary of REDIS_SENTINEL_MASTER. Every Redis
# client of the chat (channel layer, rate limits) asks them and follows their failovers;
# REDIS_URL then gives only the password, user name and database number.
REDIS_SENTINELS = [_sentinel_address(s) for s in env.list("REDIS_SENTINELS", default=[])]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
# The sentinels' own password (their `requirepass`), when they have one.
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_SENTINELS and len(REDIS_URLS) != 1:
    raise ImproperlyConfigured(
        "REDIS_SENTINELS needs one REDIS_URL, for the password and database number"
    )
_REDIS_POOL = {
    # A Redis that stops answering must not hang a send forever.
    "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
    "socket_timeout": REDIS_SOCKET_TIMEOUT,
    "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=500),
}


def _redis_host(url: str) -> dict:
    """Describe one Redis server as channels-redis takes it (the rate limits too)."""
    if not REDIS_SENTINELS:
        return {"address": url, **_REDIS_POOL}
    from redis.connection import parse_url

    options = parse_url(url)
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is not None:
        options["ssl"] = True  # rediss://
    return {
        "sentinels": REDIS_SENTINELS,
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": {
            "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            "password": REDIS_SENTINEL_PASSWORD or None,
        },
        **options,
        **_REDIS_POOL,
    }


REDIS_HOSTS = [_redis_host(url) for url in REDIS_URLS]

# Pushes waiting for one process's sockets (channels-redis keeps all of a process's sockets
# in one list): past this the layer drops them and clients heal by `sync`.
CHANNEL_CAPACITY = env.int("CHANNEL_CAPACITY", default=5000)
if REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "messaging.delivery.layer.ChatRedisChannelLayer",
            "CONFIG": {
                "hosts": REDIS_HOSTS,
                "capacity": CHANNEL_CAPACITY,
                "expiry": 60,
                "group_expiry": 86400,
                # channels-redis's own default, "asgi", under the site's prefix.
                "prefix": f"{_REDIS_KEYS}asgi",
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY, "expiry": 60},
        }
    }

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inbox"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# English stays the default for browsers that ask for none of these.
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español"), ("ar", "العربية")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "chatsite.storage.ChatStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve files straight from the app folders in development and tests (no collectstatic).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
WHITENOISE_AUTOREFRESH = DEBUG

# Uploaded files (docs/operations.md, "Uploaded files"): on this machine's disk under
# MEDIA_ROOT, or in an S3-compatible bucket. Never under the static folders: those are
# served to anyone, and these only to the members of a conversation.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=Path(VAR_DIR) / "media")
if any(
    Path(MEDIA_ROOT).resolve().is_relative_to(Path(p).resolve())
    for p in (STATIC_ROOT, BASE_DIR / "static")
):
    raise ImproperlyConfigured("MEDIA_ROOT must not be inside a static files folder")
CHAT_UPLOADS_STORAGE = env.str("CHAT_UPLOADS_STORAGE", default="local")
if CHAT_UPLOADS_STORAGE == "s3":
    # Credentials come from the environment as boto3 reads them (AWS_ACCESS_KEY_ID and
    # AWS_SECRET_ACCESS_KEY) or from the machine's role; the bucket stays private.
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("CHAT_S3_BUCKET"),
            "endpoint_url": env.str("CHAT_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("CHAT_S3_REGION", default="") or None,
            "location": env.str("CHAT_S3_PREFIX", default=""),
            "default_acl": None,
            "file_overwrite": False,
        },
    }
elif CHAT_UPLOADS_STORAGE != "local":
    raise ImproperlyConfigured("CHAT_UPLOADS_STORAGE is 'local' or 's3'")
# Set (e.g. /internal-media/) when nginx serves MEDIA_ROOT from an `internal` location:
# the app then answers downloads with X-Accel-Redirect and nginx sends the bytes.
CHAT_UPLOADS_X_ACCEL = env.str("CHAT_UPLOADS_X_ACCEL", default="")
if CHAT_UPLOADS_X_ACCEL and CHAT_UPLOADS_STORAGE != "local":
    raise ImproperlyConfigured("CHAT_UPLOADS_X_ACCEL serves MEDIA_ROOT: local storage only")
# The largest file (deploy/nginx/chat.conf's client_max_body_size must let it through).
CHAT_MAX_UPLOAD_BYTES = env.int("CHAT_MAX_UPLOAD_BYTES", default=25_000_000)
# What one person's files may take in all, sent or not.
CHAT_UPLOAD_QUOTA_BYTES = env.int("CHAT_UPLOAD_QUOTA_BYTES", default=2_000_000_000)
# Uploads per user: a message carries at most 10 files, so ten at once fit twice a minute.
CHAT_UPLOAD_RATE = env.str("CHAT_UPLOAD_RATE", default="20/60s,200/3600s")
# Downloads per user: a page of history shows many pictures at once.
CHAT_DOWNLOAD_RATE = env.str("CHAT_DOWNLOAD_RATE", default="300/10s,3000/600s")
# A picture is decoded whole: 50 megapixels hold a 48 MP phone photo and take ~150 MB.
CHAT_UPLOAD_MAX_PIXELS = env.int("CHAT_UPLOAD_MAX_PIXELS", default=50_000_000)
# Seconds an upload no message carries is kept (manage.py purge_unsent_uploads).
CHAT_UNSENT_UPLOAD_TTL = env.float("CHAT_UNSENT_UPLOAD_TTL", default=24 * 3600)
# Days staff keep the text and files of deleted and hidden messages (to judge a report, to
# restore a hide); 0, the default, erases them at the delete. purge_deleted_messages
# erases them once this has passed.
CHAT_DELETED_RETENTION_DAYS = env.float("CHAT_DELETED_RETENTION_DAYS", default=0)
# Files per message: fixed by the protocol.
CHAT_MAX_ATTACHMENTS = 10

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS proxy that sets X-Forwarded-Proto (see docs/operations.md).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe health, and Prometheus scrapes each process, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Only the site itself: its pages, scripts, styles, images and its own WebSocket
# ('self' covers ws: and wss: on the same host in CSP Level 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# The chat's own knobs.
CHAT_REGISTRATION_OPEN = env.bool("CHAT_REGISTRATION_OPEN", default=True)
# Usernames nobody can sign up with, comma separated; also refused in other cases or spelt
# with look-alike letters (messaging/usernames.py). Accounts that hold one keep it.
CHAT_RESERVED_USERNAMES = env.list(
    "CHAT_RESERVED_USERNAMES",
    default=[
        "admin", "administrator", "root", "staff", "support", "help", "system", "moderator",
        "mod", "security", "abuse", "postmaster", "hostmaster", "webmaster", "info", "noreply",
        "no-reply", "api", "www", "chat", "settings", "official", "everyone", "here",
    ],
)  # fmt: skip
CHAT_MAX_BODY = env.int("CHAT_MAX_BODY", default=4000)
CHAT_MAX_GROUP_SIZE = env.int("CHAT_MAX_GROUP_SIZE", default=50)
CHAT_HISTORY_PAGE = 50
# Conversations in a page of the inbox (GET /api/conversations/, the chat page): enough that
# most people see all of theirs at once; a `limit` of up to 200 asks for more.
CHAT_INBOX_PAGE = env.int("CHAT_INBOX_PAGE", default=100)
# PostgreSQL text search configuration for message search, fixed when the index is made.
CHAT_SEARCH_CONFIG = env.str("CHAT_SEARCH_CONFIG", default="english")
CHAT_SYNC_PAGE = 200
# Largest text frame the socket parses; bigger ones are answered `too_long` unread.
CHAT_MAX_FRAME_CHARS = env.int("CHAT_MAX_FRAME_CHARS", default=64 * 1024)
# Sends allowed per user: a burst within a short window, and a sustained rate.
CHAT_SEND_RATE = env.str("CHAT_SEND_RATE", default="20/5s,120/60s")
CHAT_TYPING_RATE = env.str("CHAT_TYPING_RATE", default="10/5s")
# Tune the garbage collector when the ASGI application loads (chatsite/gc_tuning.py).
GC_TUNING = env.bool("GC_TUNING", default=True)
# New conversations a user may start, and accounts one address may register.
CHAT_CONVERSATION_RATE = env.str("CHAT_CONVERSATION_RATE", default="30/3600s")
CHAT_REGISTER_RATE = env.str("CHAT_REGISTER_RATE", default="10/3600s")
# HTTP requests per user, by kind of endpoint (messaging/http.py, RATE_SETTINGS), sized so
# that the browser client never meets them. Reads: each reconnect of each tab fetches 4,
# opening a conversation 2, scrolling a page each, the inbox refreshes at most every 0.4 s.
CHAT_API_READ_RATE = env.str("CHAT_API_READ_RATE", default="120/10s,3000/600s")
# Search runs as you type (every 0.35 s at most) and is the dearest query.
CHAT_SEARCH_RATE = env.str("CHAT_SEARCH_RATE", default="30/10s,300/600s")
# The people finder looks up as you type (every 0.15 s at most); more lists the users.
CHAT_USER_LOOKUP_RATE = env.str("CHAT_USER_LOOKUP_RATE", default="30/10s,300/600s")
# Group create, rename, add and remove are clicks, each one told to every member.
CHAT_GROUP_CHANGE_RATE = env.str("CHAT_GROUP_CHANGE_RATE", default="30/60s,300/3600s")
# Other writes (blocks, reports, ...) are clicks too.
CHAT_API_WRITE_RATE = env.str("CHAT_API_WRITE_RATE", default="30/60s,300/3600s")
# Logins, token requests and sign-ups per address (an IPv6 /64): a few typos per person,
# many people behind one office's NAT.
CHAT_LOGIN_RATE = env.str("CHAT_LOGIN_RATE", default="20/60s,200/3600s")
# The same for all addresses together: each one hashes a password (PBKDF2, about 0.23 s of
# CPU here), so 2 per second keep hashing under half a core.
CHAT_LOGIN_TOTAL_RATE = env.str("CHAT_LOGIN_TOTAL_RATE", default="10/5s,120/60s")
# /healthz runs its checks at most once per this many seconds per process; callers within
# it share the answer.
CHAT_HEALTH_CACHE_SECONDS = env.float("CHAT_HEALTH_CACHE_SECONDS", default=1)
# The rate limits' counters in Redis, under REDIS_PREFIX.
CHAT_RATE_LIMIT_PREFIX = _REDIS_KEYS + env.str("CHAT_RATE_LIMIT_PREFIX", default="chat:rl")
# Sockets one user may have open at once, across processes.
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=20)
# Seconds a handshake may wait for its turn at the database before its work is skipped
# (refused as too_late): below daphne's 5 s handshake timeout, so no one still waiting is.
CHAT_HANDSHAKE_DEADLINE = env.float("CHAT_HANDSHAKE_DEADLINE", default=4.5)
# Handshakes one process works on at once; past this a new one is answered `busy` with a
# time to come back (messaging/realtime/admission.py), given at the pace the process
# finishes handshakes: CHAT_HANDSHAKES_PACE_GUESS a second (what one process on a 2-core
# machine re-admits, docs/performance.md), or faster once it has measured faster. The times
# lie between CHAT_BUSY_MIN_WAIT and CHAT_BUSY_MAX_WAIT seconds. 100 at once is well under a
# second of handshake work, inside CHAT_HANDSHAKE_DEADLINE: only a storm is turned away.
CHAT_HANDSHAKES_AT_ONCE = env.int("CHAT_HANDSHAKES_AT_ONCE", default=100)
CHAT_HANDSHAKES_PACE_GUESS = env.float("CHAT_HANDSHAKES_PACE_GUESS", default=250)
# Seconds a handshake taken while every place was full waits in line for one before it is
# answered `busy`: well inside CHAT_HANDSHAKE_DEADLINE, which counts the wait.
CHAT_HANDSHAKE_LINE_WAIT = env.float("CHAT_HANDSHAKE_LINE_WAIT", default=1.5)
# Connections the kernel holds for the process while it takes none (its handshake places
# and line full: messaging/realtime/accept_pause.py), instead of Twisted's 50: about five
# seconds of a saturated process's handshakes, half the browser's 10 s connect timeout. A
# storm's clients wait there in order; past it the kernel drops their SYNs, which their TCP
# sends again only 1, 3, 7 s later while the process runs out of work (docs/performance.md,
# the reconnect storm). Capped by the kernel's net.core.somaxconn (4096 on current kernels).
CHAT_LISTEN_BACKLOG = env.int("CHAT_LISTEN_BACKLOG", default=4096)
CHAT_BUSY_MIN_WAIT = env.float("CHAT_BUSY_MIN_WAIT", default=1)
CHAT_BUSY_MAX_WAIT = env.float("CHAT_BUSY_MAX_WAIT", default=120)
# Bearer tokens stop working this many days after their issue; a person holds at most
# CHAT_MAX_TOKENS_PER_USER, and one more revokes their least recently used.
CHAT_TOKEN_LIFETIME_DAYS = env.int("CHAT_TOKEN_LIFETIME_DAYS", default=90)
CHAT_MAX_TOKENS_PER_USER = env.int("CHAT_MAX_TOKENS_PER_USER", default=50)
# Rejections within a minute after which a socket counts as flooding and is closed 1008.
CHAT_ABUSE_CLOSE_AFTER = env.int("CHAT_ABUSE_CLOSE_AFTER", default=200)
# Limits of one socket (docs/operations.md, "Limits"). Frames received and not yet handled:
# past either bound the socket is closed with 1008 (a browser has a few waiting at most; its
# outbox flushes one frame per queued message). Bytes written and not yet read by its client
# (beyond the kernel's buffer): past this, closed with 1008; above the largest sync page.
CHAT_SOCKET_WAITING_FRAMES = env.int("CHAT_SOCKET_WAITING_FRAMES", default=200)
CHAT_SOCKET_WAITING_BYTES = env.int("CHAT_SOCKET_WAITING_BYTES", default=1024 * 1024)
CHAT_SOCKET_SEND_BUFFER = env.int("CHAT_SOCKET_SEND_BUFFER", default=1024 * 1024)
# Accept the permessage-deflate offer of clients (all browsers make it): a sync page crosses
# the link several times smaller; compressed message by message, so idle sockets hold no zlib.
CHAT_WS_DEFLATE = env.bool("CHAT_WS_DEFLATE", default=True)
# A sync page stops at CHAT_SYNC_PAGE messages or at about this many characters of frame.
CHAT_SYNC_MAX_CHARS = env.int("CHAT_SYNC_MAX_CHARS", default=512 * 1024)
# Threads (each with its own database connection) that run the sockets' reads of a process
# (sync, ping) beside its one thread for the sockets' other database work; 0 runs them on
# that thread too. Within DATABASE_POOL_MAX with the send lanes and HTTP requests.
CHAT_SOCKET_READ_THREADS = env.int("CHAT_SOCKET_READ_THREADS", default=4)
# Frames per user, across sockets and processes, beside sends and typing. A client syncs on
# each reconnect and gap and pages through `more`; pings every 15 s per tab (20 tabs at
# most); reads as messages are seen; edits and deletes share one rule (each one pushes a
# frame to every member of the conversation).
CHAT_SYNC_RATE = env.str("CHAT_SYNC_RATE", default="30/10s,600/600s")
CHAT_PING_RATE = env.str("CHAT_PING_RATE", default="60/30s")
CHAT_READ_RATE = env.str("CHAT_READ_RATE", default="30/5s,300/60s")
CHAT_EDIT_RATE = env.str("CHAT_EDIT_RATE", default="10/5s,60/60s")
# Reactions are quicker to give than edits (a tap each), and each is a frame to every member.
CHAT_REACTION_RATE = env.str("CHAT_REACTION_RATE", default="20/5s,120/60s")
# Handshakes per user: every tab of a person reconnecting at once after a restart fits; a
# client reopening sockets in a loop does not.
CHAT_CONNECT_RATE = env.str("CHAT_CONNECT_RATE", default="60/60s,600/3600s")
# After a process closes a user's socket for abuse (1008), it refuses that user's handshakes
# for this long: a flooder's sockets do not come straight back.
CHAT_ABUSE_COOLDOWN_SECONDS = env.float("CHAT_ABUSE_COOLDOWN_SECONDS", default=30)
# Presence: each socket refreshes its heartbeat this often; a socket not heard from for
# PRESENCE_TTL seconds (its process died) counts as gone.
CHAT_HEARTBEAT_SECONDS = env.float("CHAT_HEARTBEAT_SECONDS", default=15)
CHAT_PRESENCE_TTL = env.float("CHAT_PRESENCE_TTL", default=45)
# While the channel layer is down, how often to check whether it is back.
CHAT_LAYER_PROBE_SECONDS = env.float("CHAT_LAYER_PROBE_SECONDS", default=1)

# Background jobs: pushes, emails and clean-ups (docs/operations.md, "Background jobs"). They
# are rows of the database, run by `manage.py chat_worker` processes; with the embedded
# defaults (no REDIS_URL) each daphne process runs them too, so one process is a whole chat.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default", "push", "email"],
    }
}
CHAT_EMBEDDED_WORKER = env.bool("CHAT_EMBEDDED_WORKER", default=not REDIS_URLS)
# Jobs one worker process runs at once (pushes are sent many at a time besides).
CHAT_WORKER_THREADS = env.int("CHAT_WORKER_THREADS", default=4)
# A worker refreshes its heartbeat this often; one not heard from for CHAT_WORKER_TTL
# seconds is dead, and the jobs it was running run again.
CHAT_WORKER_HEARTBEAT_SECONDS = env.float("CHAT_WORKER_HEARTBEAT_SECONDS", default=5)
CHAT_WORKER_TTL = env.float("CHAT_WORKER_TTL", default=30)
# How often an idle worker looks for jobs.
CHAT_WORKER_POLL_SECONDS = env.float("CHAT_WORKER_POLL_SECONDS", default=0.25)
# A failing job is tried this many times in all, waiting CHAT_JOB_RETRY_SECONDS before the
# second try and twice as long before each next one (at most an hour).
CHAT_JOB_ATTEMPTS = env.int("CHAT_JOB_ATTEMPTS", default=6)
CHAT_JOB_RETRY_SECONDS = env.float("CHAT_JOB_RETRY_SECONDS", default=5)
# Finished jobs (done or failed) are deleted this many days after they finished.
CHAT_JOBS_KEEP_DAYS = env.int("CHAT_JOBS_KEEP_DAYS", default=7)

# Web Push (RFC 8030/8291/8292). The VAPID key signs every push: base64url of the raw P-256
# private key, made by `manage.py make_vapid_keys`. Without one, DEBUG makes one under
# VAR_DIR and keeps it; production offers no push.
CHAT_VAPID_PRIVATE_KEY = env.str("CHAT_VAPID_PRIVATE_KEY", default="")
# Who push services may contact about this site's pushes (a mailto: or https: URL).
CHAT_VAPID_SUBJECT = env.str("CHAT_VAPID_SUBJECT", default="mailto:postmaster@localhost")
# Push endpoints are URLs the server posts to: only https on public addresses, unless they
# start with one of these prefixes (tests, a push service of one's own).
CHAT_PUSH_ENDPOINTS_ALLOWED = env.list("CHAT_PUSH_ENDPOINTS_ALLOWED", default=[])
# How often a worker looks for new messages to push.
CHAT_PUSH_SCAN_SECONDS = env.float("CHAT_PUSH_SCAN_SECONDS", default=0.25)
# One push service's answer is awaited this long; it gets at most CHAT_PUSH_PER_SERVICE posts
# at once from a process, all services together CHAT_PUSH_CONCURRENCY.
CHAT_PUSH_TIMEOUT_SECONDS = env.float("CHAT_PUSH_TIMEOUT_SECONDS", default=10)
CHAT_PUSH_PER_SERVICE = env.int("CHAT_PUSH_PER_SERVICE", default=20)
CHAT_PUSH_CONCURRENCY = env.int("CHAT_PUSH_CONCURRENCY", default=200)
# How long a push service keeps a push for a device that is off (its TTL header).
CHAT_PUSH_TTL_SECONDS = env.int("CHAT_PUSH_TTL_SECONDS", default=86400)

# Email: missed messages and address verification. EMAIL_URL names the server
# (smtp+tls://user:password@host:587, smtps://..., consolemail://, filemail:///path);
# `make run` (DEBUG) writes them under VAR_DIR/mail instead.
if DEBUG and not env.str("EMAIL_URL", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(Path(VAR_DIR) / "mail")
else:
    vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
# A mail server that stops answering fails the job (to be tried again), not hangs it.
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="chat@localhost")
# The site's address as people open it (https://chat.example.com): emails link to it.
CHAT_SITE_URL = env.str("CHAT_SITE_URL", default="http://127.0.0.1:8000" if DEBUG else "")
# How often a worker looks for messages left unread past their reader's delay.
CHAT_EMAIL_SCAN_SECONDS = env.float("CHAT_EMAIL_SCAN_SECONDS", default=30)

# Who may read /metrics without being staff: networks, e.g. a Prometheus server's address.
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"]
)
# The version /metrics shows (chat_build_info); by default the checkout's commit.
CHAT_VERSION = env.str("CHAT_VERSION", default="")

# LOG_FORMAT=json writes one JSON object per line; message bodies and tokens are never logged.
# Every line has the same form, daphne's access lines too, with times in UTC
# (chatsite/logging_setup.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT: plain or json")
LOGGING_CONFIG = "chatsite.logging_setup.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"without_traceback": {"()": "chatsite.logging_setup.WithoutTraceback"}},
    "formatters": {
        "plain": {
            "()": "chatsite.logging_setup.PlainFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "chatsite.logging_setup.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # A request for a host name not in ALLOWED_HOSTS (scanners, a misdirected probe):
        # one line each, not a traceback.
        "django.security.DisallowedHost": {"filters": ["without_traceback"]},
        "daphne": {"level": "WARNING"},
        # One line per request and socket, as daphne writes them to stdout by default.
        "daphne.access": {"level": "INFO"},
        "django.channels.server": {"level": "WARNING"},
    },
}
