"""Settings for the chat site, read from the environment (see docs/operations.md)."""

from pathlib import Path

import environ
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
    "messaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "messaging.web.cache_control.NoStoreMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
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
    if env.bool("DATABASE_POOL", default=True):
        # psycopg's pool instead of a new connection per database hop. With health checks
        # the pool tests each connection before lending it, so the first request after a
        # restart gets a live one.
        _db["CONN_HEALTH_CHECKS"] = True
        _options["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=20),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5),
        }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Several Redis servers, separated by commas, shard the channel layer between them.
REDIS_URLS = [url.strip() for url in REDIS_URL.split(",") if url.strip()]
# Above channels-redis's 5 s blocking pop, so an idle socket's read never times out.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=10.0)

# Pushes waiting for one process's sockets (channels-redis keeps all of a process's sockets
# in one list): past this the layer drops them and clients heal by `sync`.
CHANNEL_CAPACITY = env.int("CHANNEL_CAPACITY", default=5000)
if REDIS_URLS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": url,
                        # A Redis that stops answering must not hang a send forever.
                        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                        "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=500),
                    }
                    for url in REDIS_URLS
                ],
                "capacity": CHANNEL_CAPACITY,
                "expiry": 60,
                "group_expiry": 86400,
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
CHAT_RATE_LIMIT_PREFIX = env.str("CHAT_RATE_LIMIT_PREFIX", default="chat:rl")
# Sockets one user may have open at once, across processes.
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=20)
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
# A sync page stops at CHAT_SYNC_PAGE messages or at about this many characters of frame.
CHAT_SYNC_MAX_CHARS = env.int("CHAT_SYNC_MAX_CHARS", default=512 * 1024)
# Frames per user, across sockets and processes, beside sends and typing. A client syncs on
# each reconnect and gap and pages through `more`; pings every 15 s per tab (20 tabs at
# most); reads as messages are seen; edits and deletes share one rule (each one pushes a
# frame to every member of the conversation).
CHAT_SYNC_RATE = env.str("CHAT_SYNC_RATE", default="30/10s,600/600s")
CHAT_PING_RATE = env.str("CHAT_PING_RATE", default="60/30s")
CHAT_READ_RATE = env.str("CHAT_READ_RATE", default="30/5s,300/60s")
CHAT_EDIT_RATE = env.str("CHAT_EDIT_RATE", default="10/5s,60/60s")
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

# Who may read /metrics without being staff: networks, e.g. a Prometheus server's address.
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"]
)

# LOG_FORMAT=json writes one JSON object per line; message bodies and tokens are never logged.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
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
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}
