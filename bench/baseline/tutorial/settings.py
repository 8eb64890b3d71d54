"""Settings of the tutorial chat. The channel layer keeps channels-redis' defaults (capacity
100 per channel, expiry 60 s): that is what the tutorial ships."""

import os
from pathlib import Path

VAR = Path(os.environ.get("TUTORIAL_VAR_DIR", "/tmp"))  # noqa: S108 - a throwaway sqlite file

SECRET_KEY = os.environ.get("TUTORIAL_SECRET_KEY", "tutorial-benchmark-only")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "bench.baseline.tutorial",
]

ROOT_URLCONF = "bench.baseline.tutorial.urls"
ASGI_APPLICATION = "bench.baseline.tutorial.asgi.application"

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR / "tutorial.sqlite3")}
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("TUTORIAL_REDIS_URL", "redis://127.0.0.1:6379/14")]},
    }
}

USE_TZ = True
LOGGING_CONFIG = None
