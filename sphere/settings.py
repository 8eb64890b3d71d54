"""Sphere settings: everything configurable is read from the environment here, and only here.

With no variable set Sphere runs in the embedded mode: SQLite under ``var/``, the in-memory
channel layer and the fan-out partitions inside the server process. ``DATABASE_URL`` and
``REDIS_URL`` switch the same code to the scaled mode (PostgreSQL and Redis). Every variable,
with its default, is listed in the README.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("SPHERE_DEBUG", default=False)
VAR_DIR = Path(env.str("SPHERE_VAR_DIR", default=str(BASE_DIR / "var")))


def _secret_key() -> str:
    """The secret from the environment; without one, a random key kept in ``var/``.

    A generated key lets the embedded mode start with no variable set while never shipping a
    known secret; production sets ``SPHERE_SECRET_KEY``.
    """
    configured = env.str("SPHERE_SECRET_KEY", default="")
    if configured:
        return configured
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("SPHERE_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("SPHERE_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "communities",
    "chat",
    "fanout",
    "reach",
    "web",
]

MIDDLEWARE = [
    "sphere.middleware.BodySizeLimitMiddleware",
    "sphere.middleware.NulByteMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sphere.middleware.ApiErrorBodyMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Login lockout (the admin's login, the API's login and token): after this many failures for
# one username from one address, both are refused for the cool-off time. Counted in the
# database, so across every process in both modes; successful logins are not logged.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_DISABLE_ACCESS_LOG = True
AXES_FAILURE_LIMIT = env.int("SPHERE_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SPHERE_LOGIN_COOLOFF_MIN", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "sphere.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "sphere.errors.login_locked_out"
AXES_VERBOSE = False

ROOT_URLCONF = "sphere.urls"
ASGI_APPLICATION = "sphere.asgi.application"
WSGI_APPLICATION = "sphere.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'sphere.sqlite3'}"),
}
# PostgreSQL starts a process per connection: each thread keeps its connection for a while
# (checked before reuse) instead of opening one per socket frame or request.
_is_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASES["default"]["CONN_MAX_AGE"] = env.int(
    "SPHERE_DB_CONN_MAX_AGE", default=0 if _is_sqlite else 60
)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; WAL lets readers go on while one writes, and the busy timeout
    # makes a second writer wait instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too: an in-memory database with a shared cache locks whole tables and
    # fails a writer at once while another thread reads, where a file in WAL mode lets readers
    # go on and makes writers wait their turn, as in production.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-sphere.sqlite3")}
    VAR_DIR.mkdir(parents=True, exist_ok=True)

REDIS_URL = env.str("REDIS_URL", default="")
SCALED = bool(REDIS_URL)

# The fan-out tier's keys may live on a Redis of their own, a Redis Cluster included: every
# key it touches in one command, pipeline in MULTI or script shares one hash tag. The cache and
# the channel layer stay on REDIS_URL (their clients do not speak the cluster protocol).
FANOUT_REDIS_URL = env.str("SPHERE_FANOUT_REDIS_URL", default="")  # empty: REDIS_URL
FANOUT_REDIS_CLUSTER = env.bool("SPHERE_FANOUT_REDIS_CLUSTER", default=False)

if SCALED:
    # redis-py's pool size and timeouts changed between major versions: stated here.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Never the fan-out tier's prefix: the cache's keys are its own.
            "KEY_PREFIX": "sphere-cache",
            "OPTIONS": {
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": 64,
                "timeout": 10,
                "socket_timeout": 5,
                "socket_connect_timeout": 2,
                "health_check_interval": 30,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 10,  # above the layer's own 5 s blocking reads
                        "socket_connect_timeout": 2,
                        "max_connections": 32,
                    }
                ],
                "prefix": "sphere:layer",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts ----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("SPHERE_PASSWORD_MIN_LENGTH", default=8)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security ----------------------------------------------------------------------------------

# Behind a TLS-terminating proxy in production; SPHERE_SECURE=0 for plain-HTTP local runs.
SECURE = env.bool("SPHERE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = SECURE
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_HSTS_SECONDS = env.int("SPHERE_HSTS_SECONDS", default=31536000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# The admin lives where the operator says; the moderation desk is staff-only.
ADMIN_PATH = env.str("SPHERE_ADMIN_PATH", default="admin/").strip("/") + "/"
BEHIND_PROXY = env.bool("SPHERE_BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Request bodies above this get 413 too_large before any parser reads them.
MAX_REQUEST_BODY = env.int("SPHERE_MAX_REQUEST_BODY", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY

# --- Internationalisation and static files -----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("SPHERE_STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ---------------------------------------------------------------------------------------

# Rates an operator tunes for a load test or a trusted bot; the README lists them.
THROTTLE_RATES = {
    "user": env.str("SPHERE_THROTTLE_USER", default="1200/min"),
    "auth": env.str("SPHERE_THROTTLE_AUTH", default="30/min"),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["sphere.throttling.UserThrottle"],
    "DEFAULT_PARSER_CLASSES": ["sphere.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "sphere.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "sphere.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # How many proxies' X-Forwarded-For entries to trust when rate-limiting by address: none
    # unless behind a proxy, so that a client cannot pick its own address.
    "NUM_PROXIES": env.int("SPHERE_NUM_PROXIES", default=1 if BEHIND_PROXY else 0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Sphere API",
    "DESCRIPTION": "REST API of Sphere, the community group chat backend (API v1).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH bodies are validated by their own serializers (required fields stay required).
    "COMPONENT_SPLIT_PATCH": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sphere.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "communities.roles.ROLE_CHOICES",
        "InviteReasonEnum": "communities.selectors.INVITE_REASONS",
    },
    # The API's own path converters (sphere.converters): ids are integers, codes strings.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 10**18 - 1},
        "code": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
    },
}

# --- Sphere ------------------------------------------------------------------------------------

WS_TICKET_TTL_S = 60
# Messages per user across every room, as N/period (s, min, h; e.g. "10/10s").
MESSAGE_RATE = env.str("SPHERE_RATE_MESSAGES", default="10/10s")
# The other acts of a user, each with its own window, REST and socket together (docs/api.md,
# "Rate limits"): reaction adds and removes, edits, deletions of one's own messages, read
# marker moves (rooms and threads), reports, new DMs and members added to DMs, thread follows and
# unfollows.
ACT_RATES = {
    "reaction": env.str("SPHERE_RATE_REACTIONS", default="30/10s"),
    "edit": env.str("SPHERE_RATE_EDITS", default="10/10s"),
    "delete": env.str("SPHERE_RATE_DELETES", default="20/10s"),
    "read": env.str("SPHERE_RATE_READS", default="60/10s"),
    "report": env.str("SPHERE_RATE_REPORTS", default="10/min"),
    "dm": env.str("SPHERE_RATE_DMS", default="10/min"),
    "follow": env.str("SPHERE_RATE_FOLLOWS", default="30/min"),
}
# One typing frame per user and room per this many seconds.
TYPING_INTERVAL_S = env.float("SPHERE_TYPING_INTERVAL_S", default=3.0)
WS_HEARTBEAT_S = env.int("SPHERE_WS_HEARTBEAT_S", default=25)
# A connection may have this many message sends awaiting their ack; one more is answered
# ``rate_limited`` (docs/protocol.md, "Sending").
WS_MAX_INFLIGHT = env.int("SPHERE_WS_MAX_INFLIGHT", default=64)
# Open sockets per user, every gateway together; one more is closed with 4430. 20 is far above
# a person's tabs and devices, and bounds what one account can hold (20 sockets, each with up
# to WS_OUTBOUND_BUFFER unsent). 0: no cap.
WS_MAX_PER_USER = env.int("SPHERE_WS_MAX_PER_USER", default=20)
# A user whose last socket closed is announced offline only after this many seconds with no
# socket: a reconnect within it announces nothing (docs/protocol.md, "Presence").
PRESENCE_GRACE_S = env.float("SPHERE_PRESENCE_GRACE_S", default=5.0)
# The group-commit writer (chat/writer/): at most this many sends per transaction, and how
# long a busy writer waits for more before it commits.
WRITER_BATCH = env.int("SPHERE_WRITER_BATCH", default=256)
WRITER_LINGER_MS = env.float("SPHERE_WRITER_LINGER_MS", default=1.0)
# A connection whose unsent bytes pass this bound is closed with 4429.
WS_OUTBOUND_BUFFER = env.int("SPHERE_WS_OUTBOUND_BUFFER", default=1024 * 1024)
# Write frames straight to the socket under daphne (framed once per batch); off: through the
# ASGI send path, one task hop and one encode per connection.
WS_DIRECT_WRITE = env.bool("SPHERE_WS_DIRECT_WRITE", default=True)
# Presence is sent only to those sharing a room of at most this many members.
PRESENCE_MAX_ROOM = 500
# ``/metrics`` asks for this bearer token when set; without it only loopback and private
# addresses may scrape (the trusted hop, sphere/clientip.py), and behind a proxy nobody may.
METRICS_TOKEN = env.str("SPHERE_METRICS_TOKEN", default="")
FANOUT_PARTITIONS = env.int("SPHERE_FANOUT_PARTITIONS", default=8)
# Scaled mode: every fan-out key starts with this prefix (several deployments, or test runs, can
# share one Redis); recipients are looked up in this many user shards.
FANOUT_PREFIX = env.str("SPHERE_FANOUT_PREFIX", default="sphere")
FANOUT_USER_SHARDS = env.int("SPHERE_FANOUT_USER_SHARDS", default=16)
# A partition's lease lives this long unless its holder renews it; a dead holder's partitions
# are taken over within the TTL plus one acquisition round.
FANOUT_LEASE_MS = env.int("SPHERE_FANOUT_LEASE_MS", default=5000)
# Deliveries of one stream entry before it goes to the dead-letter stream.
FANOUT_MAX_TRIES = env.int("SPHERE_FANOUT_MAX_TRIES", default=3)
# The sweep publishes again committed events the tier has not routed after this long; it runs
# every FANOUT_SWEEP_EVERY_S (the slow safety pass) and at once after a publish had failed.
FANOUT_SWEEP_AFTER_S = env.float("SPHERE_FANOUT_SWEEP_AFTER_S", default=2.0)
FANOUT_SWEEP_EVERY_S = env.float("SPHERE_FANOUT_SWEEP_EVERY_S", default=30.0)
# Entries kept per partition stream and per gateway inbox (approximate trimming).
FANOUT_STREAM_MAXLEN = env.int("SPHERE_FANOUT_STREAM_MAXLEN", default=100_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Invite codes and socket tickets never reach the output (sphere/logs.py).
    "filters": {"redact": {"()": "sphere.logs.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("SPHERE_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # Lockouts are warnings; every login is not worth a line.
        "axes": {"level": "WARNING"},
    },
}
