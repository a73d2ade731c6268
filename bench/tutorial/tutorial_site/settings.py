"""Settings of the tutorial-style baseline, as the Channels tutorial would deploy it.

TUTORIAL_LAYER=redis (default): channels-redis RedisChannelLayer with its default capacity,
and TUTORIAL_STORE=1: one INSERT per message. TUTORIAL_LAYER=memory with TUTORIAL_STORE=0
is the bare ceiling: daphne + the in-memory layer, a group_send per copy, nothing stored.
"""

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="tutorial-baseline-not-secret")
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["daphne", "channels", "tchat"]
ROOT_URLCONF = "tutorial_site.urls"
ASGI_APPLICATION = "tutorial_site.asgi.application"
DATABASES = {
    "default": env.db(
        "TUTORIAL_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/chat_bench_tutorial"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

TUTORIAL_STORE = env.bool("TUTORIAL_STORE", default=True)
if env.str("TUTORIAL_LAYER", default="redis") == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [env.str("TUTORIAL_REDIS_URL", default="redis://127.0.0.1:6379/3")]
            },
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
