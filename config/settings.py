"""The one settings module.

Everything comes from the environment (or a `.env` file beside manage.py) through django-environ.
With no environment at all you get the embedded default: SQLite in WAL mode and Celery's
filesystem broker, both under `var/`. `DATABASE_URL` and `REDIS_URL` switch to PostgreSQL and
Redis. Production differs only by environment values; `.env.example` lists every variable.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -----------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-debug-only-key" if DEBUG else "")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is not set. `make run` writes one into .env; in production set it in the "
        "environment (DEBUG=1 allows an insecure development key)."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public address of the site, used in links the service hands out (OpenAPI servers, MCP URL).
# Unset, it is this machine at the port the web process serves (`PORT`, as `make run` sets it).
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}")
SITE_URL = SITE_URL.rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.spotify",
    "apps.accounts",
    "apps.music",
    "apps.history",
    "apps.imports",
    "apps.mcp",
]

MIDDLEWARE = [
    "config.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
SITE_ID = 1

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite runs in WAL mode with IMMEDIATE transactions so the web process and the worker can
# write side by side; the timeout lets one wait for the other instead of failing.

DATABASES = {
    # An empty DATABASE_URL (a bare `DATABASE_URL=` line) is the embedded default too.
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
        ),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker and locks ----------------------------------------------------------------
# With REDIS_URL, Redis is the cache (rate-limit pause, locks, worker heartbeat) and the broker.
# Without it, a file cache under var/ is shared by the web, worker and beat processes.

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="spotify-history"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -----------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# --- django-allauth -------------------------------------------------------------------------

ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
SOCIALACCOUNT_STORE_TOKENS = False
# Sign in with Spotify: our provider class points every URL at SPOTIFY_*_BASE_URL, turns PKCE on
# and asks for apps.accounts.spotify.SCOPES; the adapter builds the app from SPOTIFY_CLIENT_ID and
# hands the tokens to connect_spotify.
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "spotify": {
        "provider_class": "apps.accounts.oauth.provider.SpotifyProvider",
        "OAUTH_PKCE_ENABLED": True,
    }
}

# --- Internationalisation -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files and uploads ---------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, not hashed: pages render before (or without) collectstatic, as in tests.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app folders too, so a live test server needs no collectstatic.
WHITENOISE_USE_FINDERS = True

# --- Security -------------------------------------------------------------------------------
# HTTPS settings follow SECURE_SSL_REDIRECT, so a plain-HTTP local run keeps working.

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A strict Content Security Policy on every response (config/security.py): only the project's own
# static files, no inline script or style. `form-action` is left out on purpose: sign-in forms
# redirect to Spotify and OAuth consent redirects to the assistant's own callback.
MIDDLEWARE += ["config.security.ContentSecurityPolicyMiddleware"]
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
}

# --- Spotify tokens -------------------------------------------------------------------------
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation). `make run` writes one
# into .env; `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key())"`.

TOKEN_ENCRYPTION_KEY = env.list("TOKEN_ENCRYPTION_KEY", default=[])

# --- Spotify --------------------------------------------------------------------------------

SPOTIFY_CLIENT_ID = env.str("SPOTIFY_CLIENT_ID", default="")
SPOTIFY_CLIENT_SECRET = env.str("SPOTIFY_CLIENT_SECRET", default="")
SPOTIFY_API_BASE_URL = env.str("SPOTIFY_API_BASE_URL", default="https://api.spotify.com").rstrip(
    "/"
)
SPOTIFY_ACCOUNTS_BASE_URL = env.str(
    "SPOTIFY_ACCOUNTS_BASE_URL", default="https://accounts.spotify.com"
).rstrip("/")

# --- Collection -----------------------------------------------------------------------------

COLLECTOR_INTERVAL_SECONDS = env.int("COLLECTOR_INTERVAL_SECONDS", default=600)
INITIAL_SYNC_ENABLED = env.bool("INITIAL_SYNC_ENABLED", default=True)
# Spotify searches per user per hour for the real track of local songs (0 turns it off).
RESOLVE_SEARCHES_PER_RUN = env.int("RESOLVE_SEARCHES_PER_RUN", default=50)
INITIAL_SYNC_MAX_DAYS = env.int("INITIAL_SYNC_MAX_DAYS", default=30)
INITIAL_SYNC_MAX_REQUESTS = env.int("INITIAL_SYNC_MAX_REQUESTS", default=200)

# --- Rules of the data ----------------------------------------------------------------------

# A play counts as a listen from this many milliseconds (or when Spotify gives no duration).
LISTEN_MIN_MS = env.int("LISTEN_MIN_MS", default=30_000)
# The same play from two sources (API and export) matches within this many seconds.
DEDUP_TOLERANCE_SECONDS = env.int("DEDUP_TOLERANCE_SECONDS", default=5)

# --- Imports --------------------------------------------------------------------------------

IMPORT_MAX_ZIP_SIZE_MB = env.int("IMPORT_MAX_ZIP_SIZE_MB", default=500)
IMPORT_MAX_RECORDS = env.int("IMPORT_MAX_RECORDS", default=5_000_000)
IMPORT_MAX_UNCOMPRESSED_MB = env.int("IMPORT_MAX_UNCOMPRESSED_MB", default=4096)
IMPORT_MAX_COMPRESSION_RATIO = env.int("IMPORT_MAX_COMPRESSION_RATIO", default=100)
IMPORT_KEEP_SENSITIVE = env.bool("IMPORT_KEEP_SENSITIVE", default=False)
IMPORT_WATCH_DIR = env.str("IMPORT_WATCH_DIR", default="")
# Records per write; each batch commits with the job's progress.
IMPORT_BATCH_SIZE = env.int("IMPORT_BATCH_SIZE", default=50_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Logs -----------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")  # "json" in production
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=30)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.logging.JsonFormatter"},
    },
    "handlers": {
        # Standard error: what the commands print on standard output (`--json`) stays clean.
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        },
        "database": {
            "class": "apps.history.logging.DatabaseLogHandler",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console", "database"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}

# --- Celery ---------------------------------------------------------------------------------
# Without REDIS_URL the broker is a folder under var/ (one machine, no servers to install).

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "broker" / "queue"),
        "data_folder_out": str(VAR_DIR / "broker" / "queue"),
        "processed_folder": str(VAR_DIR / "broker" / "processed"),
        "control_folder": str(VAR_DIR / "broker" / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3 * 3600}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    (VAR_DIR / "broker" / "queue").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "broker" / "processed").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "broker" / "control").mkdir(parents=True, exist_ok=True)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Seconds between worker heartbeats; /healthz calls a worker dead after three missed ones.
WORKER_HEARTBEAT_SECONDS = env.int("WORKER_HEARTBEAT_SECONDS", default=15)

# The Beat schedule lives in code; the database scheduler copies it into django-celery-beat's
# tables at start, where staff can pause an entry in the admin.
CELERY_BEAT_SCHEDULE = {
    # Delete LogEvent rows older than LOG_RETENTION_DAYS, once an hour.
    "purge-old-log-events": {
        "task": "apps.history.tasks.purge_old_log_events",
        "schedule": 3600.0,
    },
    # Send imports left running by a dead worker back to the queue (or fail them after 3 tries).
    "requeue-stale-imports": {
        "task": "apps.imports.tasks.requeue_stale_imports",
        "schedule": 120.0,
    },
    # Import new ZIPs dropped in IMPORT_WATCH_DIR/<username>/ (does nothing when it is unset).
    "scan-import-watch-dir": {
        "task": "apps.imports.tasks.scan_import_watch_dir",
        "schedule": 60.0,
    },
}
# Collection (apps.history.collection).
CELERY_BEAT_SCHEDULE.update(
    {
        # Queue a poll for every active, unpaused, connected user whose last poll is due.
        "queue-due-polls": {
            "task": "apps.history.tasks.queue_due_polls",
            "schedule": float(COLLECTOR_INTERVAL_SECONDS),
        },
        # Search Spotify for the real track of local songs (Account Data rows), once an hour.
        "resolve-local-tracks": {
            "task": "apps.history.tasks.queue_local_track_searches",
            "schedule": 3600.0,
        },
        # Mark and log Spotify authorizations that expire within 30 and 7 days, twice a day.
        "warn-expiring-spotify-tokens": {
            "task": "apps.history.tasks.warn_expiring_tokens",
            "schedule": 12 * 3600.0,
        },
    }
)

# --- Django REST framework and the OpenAPI schema -------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spotify listening history",
    "DESCRIPTION": "Analysis tools over one person's Spotify listening history.",
    "VERSION": "1.0.0",
    "SERVERS": [{"url": SITE_URL}],
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Assistant tools: MCP, OAuth 2.1 and rate limits ----------------------------------------
# django-mcpz's OAuth 2.1 authorization server (dynamic client registration, client metadata
# documents, PKCE) lets ChatGPT apps and Claude connectors connect to /mcp; API tokens
# (apps.mcp.models.ApiToken) serve everything else.

INSTALLED_APPS += ["django_mcpz.oauth"]
# Tool calls per token (or per signed-in user) on /api/tools/*, /mcp/call and /mcp.
TOOLS_RATE_LIMIT = env.str("TOOLS_RATE_LIMIT", default="120/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"tools": TOOLS_RATE_LIMIT}  # type: ignore[assignment]
SPECTACULAR_SETTINGS["OAS_VERSION"] = "3.1.0"
# Swagger UI at /api/docs/ from drf-spectacular-sidecar's static files, with its start-up script
# as a file (SpectacularSwaggerSplitView), so the page passes the Content Security Policy.
INSTALLED_APPS += ["drf_spectacular_sidecar"]
SPECTACULAR_SETTINGS["SWAGGER_UI_DIST"] = "SIDECAR"
SPECTACULAR_SETTINGS["SWAGGER_UI_FAVICON_HREF"] = "SIDECAR"
SPECTACULAR_SETTINGS["REDOC_DIST"] = "SIDECAR"
# Tool result schemas come from the registry's msgspec Structs; one Bearer security scheme.
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "apps.mcp.api.postprocess_schema",
]
