"""Waymark settings, read from the environment through django-environ.

Every variable is documented in README.md with its default. A `.env` file in
the project root is read when present, so local overrides need no exports.
"""

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The default key is only fit for a laptop: it signs unsubscribe and tracking
# links and sessions, and it is public. Without DEBUG, Waymark refuses it.
DEVELOPMENT_SECRET_KEY = "django-insecure-waymark-local-development-key"
SECRET_KEY = env("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set, and the development default signs links anyone could forge. "
        "Set SECRET_KEY to a long random value, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))', "
        "or DEBUG=true on a development machine."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Absolute base for every link Waymark puts in a message (tracking,
# preference center, unsubscribe). No trailing slash.
SITE_URL = env("SITE_URL", default="http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    # Django's admin with Waymark's dashboard on its index (config.admin_site).
    "config.apps.WaymarkAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "polymorphic",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "anymail",
    "axes",
    "contacts",
    "subscriptions",
    "messaging",
    "journeys",
    "imports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "contacts.api.middleware.ApiErrorMiddleware",
    # Last, as django-axes asks: it answers a locked-out login attempt.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # Refuses logins locked out after repeated failures, before checking passwords.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed admin logins: after AXES_FAILURE_LIMIT failures for one username from
# one address, that pair is refused for the cool-off time. Counted in Redis.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env.int("WAYMARK_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("WAYMARK_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# Django's form and widget templates as Jinja2, the rest as Django templates
# (config/forms.py): pages of many forms render several times faster.
FORM_RENDERER = "config.forms.FormRenderer"

# Local state of the embedded defaults (SQLite file, mail sink, embedded Redis).
VAR_DIR = BASE_DIR / "var"
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'waymark.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
# Keep connections open between requests: opening one costs more than most
# API requests do. Checking a kept connection before each request costs a
# round trip too, so it is optional: without it, a connection the database
# dropped (a restart) fails one request and is replaced.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ yet; SQLite creates the file, not its folder.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded database serves a web process, a worker and a scheduler at
    # once: WAL lets readers run beside the writer, and IMMEDIATE transactions
    # wait for the write lock instead of failing half-way with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The languages the subscriber pages speak: each contact's own (its locale),
# else the browser's. Translations live in subscriptions/locale/.
LANGUAGES = [("en", "English"), ("fr", "Français")]
# Where makemessages puts the texts of templates/subscriptions/ (README: Subscribers).
LOCALE_PATHS = [BASE_DIR / "subscriptions" / "locale"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
# Uploaded files (CSV imports). Never served as they are: staff download them
# through views that check permissions.
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"

# --- CSV imports (imports app) ------------------------------------------------
WAYMARK_IMPORT = {
    # Larger uploads are refused before they are read.
    "MAX_BYTES": env.int("WAYMARK_IMPORT_MAX_BYTES", default=1024 * 1024 * 1024),
    # Rows read per step by the dry run, and written per transaction by the
    # import job (set-based: a chunk costs a constant number of statements).
    "CHUNK_ROWS": env.int("WAYMARK_IMPORT_CHUNK_ROWS", default=20000),
    # Bad rows kept (line and reason) for the report and its CSV download.
    "ERRORS_KEPT": env.int("WAYMARK_IMPORT_ERRORS_KEPT", default=1000),
}
# Uploads above 2.5 MB go to a temporary file as they arrive, never to memory;
# an import above its limit is stopped as it starts arriving.
FILE_UPLOAD_HANDLERS = [
    "imports.uploads.ImportSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Redis and background work -------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}
# rq's queues, jobs and workers in the admin, for staff with the permission
# "Django-RQ | Access admin page" (config.admin_site.QueuesAdmin).
RQ_SHOW_ADMIN_LINK = True

# --- Email ------------------------------------------------------------------
# EMAIL_URL picks the backend and relay in one variable, e.g.
# smtp://user:pass@relay:587/?tls=True or consolemail:// .
vars().update(env.email_url("EMAIL_URL", default="smtp://127.0.0.1:1025"))
# An ESP through django-anymail, e.g. anymail.backends.mailgun.EmailBackend
# (configured by ANYMAIL_* variables below); EMAIL_URL is then unused.
EMAIL_BACKEND = env("EMAIL_BACKEND", default=EMAIL_BACKEND)  # noqa: F821 (set just above)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Waymark <waymark@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL


def _time_window(value):
    """Parse a time window such as 21:00-08:00; empty means none."""
    from datetime import time

    if not value.strip():
        return None
    start, _, end = value.partition("-")
    try:
        return (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError:
        raise ImproperlyConfigured(
            f"WAYMARK_QUIET_HOURS must look like 21:00-08:00, not {value!r}."
        ) from None


# --- Delivery backends: one per medium (messaging.backends) -------------------
# The defaults need no account anywhere: SMS, WhatsApp and push messages are
# written to files under WAYMARK_OUTBOX_DIR, in-app messages are stored for
# the app, and webhooks are called for real.
WAYMARK_BACKENDS = {
    "email": env("WAYMARK_EMAIL_BACKEND", default="messaging.backends.email.EmailBackend"),
    "sms": env("WAYMARK_SMS_BACKEND", default="messaging.backends.sms.SmsOutboxBackend"),
    "whatsapp": env(
        "WAYMARK_WHATSAPP_BACKEND", default="messaging.backends.sms.WhatsAppOutboxBackend"
    ),
    "push": env("WAYMARK_PUSH_BACKEND", default="messaging.backends.push.PushOutboxBackend"),
    "web_push": env(
        "WAYMARK_WEB_PUSH_BACKEND", default="messaging.backends.webpush.WebPushOutboxBackend"
    ),
    "in_app": env("WAYMARK_IN_APP_BACKEND", default="messaging.backends.inapp.InAppBackend"),
    "webhook": env("WAYMARK_WEBHOOK_BACKEND", default="messaging.backends.webhook.WebhookBackend"),
}
# Where the outbox backends write, one JSON-lines file per medium (sms.jsonl, ...).
WAYMARK_OUTBOX_DIR = env("WAYMARK_OUTBOX_DIR", default=str(VAR_DIR / "outbox"))
# Country whose numbers may be typed without their country code ("GB": 020 7946 0958);
# empty: every phone number must start with + and its country code.
WAYMARK_DEFAULT_PHONE_REGION = env("WAYMARK_DEFAULT_PHONE_REGION", default="")
# Seconds before a call to Twilio, FCM or a web push service gives up (retried later).
WAYMARK_PROVIDER_TIMEOUT = env.float("WAYMARK_PROVIDER_TIMEOUT", default=10.0)

# Twilio, for messaging.backends.sms.TwilioSmsBackend and TwilioWhatsAppBackend.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
# Sender: a Messaging Service, or a number (or alphanumeric sender id) of the account.
TWILIO_MESSAGING_SERVICE_SID = env("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_SMS_FROM = env("TWILIO_SMS_FROM", default="")
TWILIO_WHATSAPP_FROM = env("TWILIO_WHATSAPP_FROM", default="")
TWILIO_API_URL = env("TWILIO_API_URL", default="https://api.twilio.com").rstrip("/")

# Firebase Cloud Messaging (HTTP v1), for messaging.backends.push.FcmBackend: a
# service account's JSON key file; the project id defaults to the key's.
FCM_CREDENTIALS_FILE = env("FCM_CREDENTIALS_FILE", default="")
FCM_PROJECT_ID = env("FCM_PROJECT_ID", default="")
FCM_API_URL = env("FCM_API_URL", default="https://fcm.googleapis.com").rstrip("/")

# Web push (VAPID), for messaging.backends.webpush.WebPushBackend. Make a key
# pair with `manage.py generate_vapid_keys`; the public key goes to browsers.
VAPID_PUBLIC_KEY = env("VAPID_PUBLIC_KEY", default="")
VAPID_PRIVATE_KEY = env("VAPID_PRIVATE_KEY", default="")
VAPID_SUBJECT = env("VAPID_SUBJECT", default="")  # mailto:ops@example.com
# How long a push service keeps a notification for a browser that is offline.
WAYMARK_WEB_PUSH_TTL = env.int("WAYMARK_WEB_PUSH_TTL", default=24 * 60 * 60)

# In-app messages disappear from the inbox this many days after delivery; 0: never.
WAYMARK_IN_APP_EXPIRY_DAYS = env.int("WAYMARK_IN_APP_EXPIRY_DAYS", default=0)

# Webhooks: never to private, loopback, link-local or otherwise internal
# addresses unless allowed (the same rule guards web push endpoints).
WAYMARK_WEBHOOK_TIMEOUT = env.float("WAYMARK_WEBHOOK_TIMEOUT", default=10.0)
WAYMARK_WEBHOOK_ALLOW_PRIVATE = env.bool("WAYMARK_WEBHOOK_ALLOW_PRIVATE", default=False)
# Networks (CIDRs, comma-separated) webhooks may reach although they are
# private, e.g. an internal service's "10.20.0.0/16,fd00:1::/64".
WAYMARK_WEBHOOK_ALLOWED_NETWORKS = env.list("WAYMARK_WEBHOOK_ALLOWED_NETWORKS", default=[])
for _network in WAYMARK_WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"WAYMARK_WEBHOOK_ALLOWED_NETWORKS: {_network!r} is not a network ({exc})."
        ) from None
# When set, each call carries Waymark-Signature: t=<unix time>,v1=<HMAC-SHA256 hex>.
WAYMARK_WEBHOOK_SIGNING_SECRET = env("WAYMARK_WEBHOOK_SIGNING_SECRET", default="")

# --- Journey engine -----------------------------------------------------------
WAYMARK_ENGINE = {
    # Enrollments claimed per scheduler pass and advanced per rq job.
    "BATCH_SIZE": env.int("WAYMARK_BATCH_SIZE", default=500),
    # How long a claim holds; a worker that dies frees its work after this.
    "LEASE": timedelta(seconds=env.int("WAYMARK_LEASE_SECONDS", default=300)),
    # Pause between scheduler passes when there was nothing to do.
    "SCHEDULER_INTERVAL": env.float("WAYMARK_SCHEDULER_INTERVAL", default=1.0),
    # Seconds between the scheduler's trigger passes: schedules, dates in
    # attributes, segment entries and the audience sweep.
    "TRIGGER_INTERVAL": env.float("WAYMARK_TRIGGER_INTERVAL", default=30.0),
    # Seconds between the scheduler's compactions of the journey and message
    # tallies (the analytics' figures; exact between compactions too).
    "TALLY_COMPACT_INTERVAL": env.float("WAYMARK_TALLY_COMPACT_INTERVAL", default=60.0),
    # Safety valve: steps one enrollment may take in one job before yielding.
    "MAX_STEPS_PER_RUN": 100,
}
WAYMARK_SENDING = {
    # Delivery attempts per message before it is recorded as failed.
    "MAX_ATTEMPTS": env.int("WAYMARK_SEND_MAX_ATTEMPTS", default=5),
    # Back-off before attempt n+1 is RETRY_BASE * 4**(n-1): 1, 4, 16, 64 minutes.
    "RETRY_BASE": timedelta(seconds=env.int("WAYMARK_SEND_RETRY_BASE_SECONDS", default=60)),
    # Marketing messages per contact per channel per local day; 0: no limit.
    # Stops a journey mistake (a loop back to a send step) from flooding anyone.
    "DAILY_CAP": env.int("WAYMARK_DAILY_CAP", default=10),
    # Marketing messages due between these local times (the contact's time
    # zone) wait for the end of the window; empty: no quiet hours.
    "QUIET_HOURS": _time_window(env("WAYMARK_QUIET_HOURS", default="")),
}
# Days the content of each sent message (what the contact received) is kept
# for its timeline and admin page; 0: none is kept.
WAYMARK_SENT_CONTENT_DAYS = env.int("WAYMARK_SENT_CONTENT_DAYS", default=30)
# Double opt-in confirmations are sent with the template of this name
# (created on first use when missing).
WAYMARK_CONFIRMATION_TEMPLATE = env(
    "WAYMARK_CONFIRMATION_TEMPLATE", default="Double opt-in confirmation"
)
# django-anymail: every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], e.g.
# ANYMAIL_WEBHOOK_SECRET, ANYMAIL_MAILGUN_API_KEY, ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY.
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in os.environ.items()
    if name.startswith("ANYMAIL_")
}
# The mailto: target of List-Unsubscribe; empty: unsubscribe@<DEFAULT_FROM_EMAIL's domain>.
WAYMARK_UNSUBSCRIBE_MAILTO = env("WAYMARK_UNSUBSCRIBE_MAILTO", default="")

# --- Message templates (messaging.rendering) ------------------------------------
WAYMARK_RENDERING = {
    # The longest output one template field may render to, in characters.
    "MAX_CHARS": env.int("WAYMARK_RENDER_MAX_CHARS", default=512 * 1024),
    # Seconds one template field may take to render.
    "TIMEOUT": env.float("WAYMARK_RENDER_TIMEOUT", default=2.0),
}

# --- Subscriber pages (preference center, unsubscribe, confirmation) ---------
# What a one-click unsubscribe link leaves: the message type of the message
# it came in ("message_type"), or that message type's whole channel ("channel").
WAYMARK_UNSUBSCRIBE_SCOPE = env("WAYMARK_UNSUBSCRIBE_SCOPE", default="message_type")
if WAYMARK_UNSUBSCRIBE_SCOPE not in ("message_type", "channel"):
    raise ImproperlyConfigured(
        "WAYMARK_UNSUBSCRIBE_SCOPE must be message_type or channel, "
        f"not {WAYMARK_UNSUBSCRIBE_SCOPE!r}."
    )
# How long a double opt-in confirmation link works. Preference and
# unsubscribe links never expire: old emails must keep working.
WAYMARK_CONFIRMATION_MAX_AGE = timedelta(
    days=env.int("WAYMARK_CONFIRMATION_MAX_AGE_DAYS", default=7)
)
# The name and logo the subscriber pages carry; no logo when empty.
WAYMARK_SITE_NAME = env("WAYMARK_SITE_NAME", default="Waymark")
WAYMARK_LOGO_URL = env("WAYMARK_LOGO_URL", default="")
if WAYMARK_LOGO_URL and not WAYMARK_LOGO_URL.startswith(("https://", "http://", "/")):
    raise ImproperlyConfigured(
        f"WAYMARK_LOGO_URL must be an http(s) URL or a path, not {WAYMARK_LOGO_URL!r}."
    )

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["contacts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["contacts.api.permissions.ApiKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["contacts.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["contacts.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "contacts.api.errors.iterable_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# The OpenAPI 3 description at /api/schema/, read by the docs at /api/docs/.
SPECTACULAR_SETTINGS = {
    "TITLE": "Waymark API",
    "DESCRIPTION": (
        "Iterable's API contract, served by Waymark: point an Iterable client at this "
        "site's base URL. Send the key in the Api-Key header."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The interactive docs' assets come from this site, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "Api-Key"},
        }
    },
    "SECURITY": [{"ApiKey": []}],
}

WAYMARK_API = {
    # Requests per minute per API key, by the key's scope; 0: no limit.
    "RATE_PER_MINUTE": {
        "server": env.int("WAYMARK_API_RATE_SERVER", default=60_000),
        "client": env.int("WAYMARK_API_RATE_CLIENT", default=6_000),
    },
    # Larger request bodies get a 413; bulk requests with more items a BatchTooLarge.
    "MAX_BODY_BYTES": env.int("WAYMARK_API_MAX_BODY_BYTES", default=16 * 1024 * 1024),
    "MAX_BATCH": env.int("WAYMARK_API_MAX_BATCH", default=1000),
}

# Rate limits and other short-lived counters live in Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "waymark",
    }
}

# --- Security -----------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool(
    "SECURE_COOKIES", default=not DEBUG and SITE_URL.startswith("https")
)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_secrets": {"()": "config.logging.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # runserver's request lines, through the filter that hides api_key values.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
