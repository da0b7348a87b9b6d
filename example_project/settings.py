"""Settings of the example site, and a template for your own.

Environment variables:

``SESSIONKIT_REDIS_URL``
    ``redis://host:port/db``: keep sessions in Redis instead of the database.
``SESSIONKIT_MONGO_URL``
    ``mongodb://host:port/db``: keep sessions in MongoDB instead of the database
    (``example_project/run`` installs the ``mongo`` extra, pymongo, when it is set).
``SESSIONKIT_EXAMPLE_DB``
    Path of the SQLite file (default ``example_project/db.sqlite3``).
``EXAMPLE_IDLE_TIMEOUT``, ``EXAMPLE_ABSOLUTE_TIMEOUT``, ``EXAMPLE_ANONYMOUS_MAX_AGE``
    Seconds: short session lifetimes to watch (see ``SESSIONKIT`` below).
``EXAMPLE_MAX_SESSIONS``, ``EXAMPLE_MAX_SESSIONS_POLICY``
    The per-user limit (``2``) and what a login past it does (``evict_oldest``, ``refuse``).
``DJANGO_SECRET_KEY``
    Signing key; the default below is for this local demo only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "example-only-not-secret-5c1d0f8e2b7a4e6f9a3b8c7d6e5f4a3b"
)
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Instead of "django.contrib.sessions".
    "django_sessionkit",
    "example_project.tutorial",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Where django.contrib.sessions.middleware.SessionMiddleware was.
    "django_sessionkit.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

SESSION_ENGINE = "django_sessionkit.engine"

# Where the sessions live: the database by default, Redis when SESSIONKIT_REDIS_URL is set,
# MongoDB when SESSIONKIT_MONGO_URL is.
REDIS_URL = os.environ.get("SESSIONKIT_REDIS_URL", "")
MONGO_URL = os.environ.get("SESSIONKIT_MONGO_URL", "")
SESSION_STORE: dict[str, Any] = {
    "BACKEND": "django_sessionkit.stores.database.DatabaseStore",
    "LOCATION": "default",
}
if REDIS_URL:
    SESSION_STORE = {"BACKEND": "django_sessionkit.stores.redis.RedisStore", "LOCATION": REDIS_URL}
elif MONGO_URL:
    SESSION_STORE = {"BACKEND": "django_sessionkit.stores.mongo.MongoStore", "LOCATION": MONGO_URL}


# Every key, set to its default unless noted. The comment names the express-session option.
# A key left out falls back to Django's SESSION_* setting named in its comment.
def _seconds(name: str) -> int | None:
    """A lifetime the demo takes from the environment (unset: no limit)."""
    value = os.environ.get(name)
    return int(value) if value else None


SESSIONKIT: dict[str, Any] = {
    # secret: a string, or a list whose first entry signs and all verify (secret rotation).
    # None: SECRET_KEY signs, SECRET_KEY + SECRET_KEY_FALLBACKS verify.
    "SECRET": None,
    # name: the cookie's name. Fallback SESSION_COOKIE_NAME ("sessionid").
    # "connect.sid" is express-session's default.
    "NAME": "sessionid",
    "COOKIE": {
        # cookie.maxAge, in SECONDS (express counts milliseconds). None: a cookie that ends
        # when the browser closes. Fallback SESSION_COOKIE_AGE (two weeks), or None when
        # SESSION_EXPIRE_AT_BROWSER_CLOSE. This example: 30 minutes.
        "MAX_AGE": 30 * 60,
        # cookie.httpOnly. Fallback SESSION_COOKIE_HTTPONLY (True).
        "HTTP_ONLY": True,
        # cookie.secure: True, False or "auto" (Secure when the request came over HTTPS, as
        # PROXY decides). Fallback SESSION_COOKIE_SECURE (False). This example: "auto".
        "SECURE": "auto",
        # cookie.sameSite: "Strict", "Lax", "None", "auto" (None over HTTPS, else Lax),
        # True (Strict), False/None (attribute left out). Fallback SESSION_COOKIE_SAMESITE.
        "SAME_SITE": "Lax",
        # cookie.domain. Fallback SESSION_COOKIE_DOMAIN (None: this host only).
        "DOMAIN": None,
        # cookie.path. Fallback SESSION_COOKIE_PATH ("/").
        "PATH": "/",
        # cookie.partitioned (CHIPS); browsers want Secure with it.
        "PARTITIONED": False,
        # cookie.priority: "Low", "Medium", "High" or None (attribute left out).
        "PRIORITY": None,
    },
    # genid: dotted path of a callable taking the request and returning a new id.
    # None: 256 random bits.
    "GENID": None,
    # proxy: None follows Django's SECURE_PROXY_SSL_HEADER; True trusts X-Forwarded-Proto;
    # False only believes the connection itself.
    "PROXY": None,
    # resave: save the session on every request that carries it, even unmodified.
    # Fallback SESSION_SAVE_EVERY_REQUEST (False).
    "RESAVE": False,
    # rolling: re-send the cookie and push the expiry back on every request that carries
    # a session. Fallback SESSION_SAVE_EVERY_REQUEST (False).
    "ROLLING": False,
    # saveUninitialized: save (and send a cookie for) new sessions nobody wrote to.
    "SAVE_UNINITIALIZED": False,
    # store: {"BACKEND": dotted path, "LOCATION": ..., "OPTIONS": {...}}, shaped like CACHES.
    "STORE": SESSION_STORE,
    # unset: what `request.session = None` in a view does: "keep" or "destroy".
    "UNSET": "keep",
    # No express option (express always signs with cookie-signature): False puts the bare
    # id in the cookie.
    "SIGNED": True,
    # No express option: "express" keys the store by the raw id, as connect-redis does.
    "COMPAT": None,
    # No express option: request.META key (e.g. "HTTP_X_FORWARDED_FOR") that trusted proxies
    # append the client's address to, and how many such proxies there are. None: REMOTE_ADDR.
    "CLIENT_IP_HEADER": None,
    "TRUSTED_PROXIES": 1,
    # No express option: user agents are stored cut to this length.
    "USER_AGENT_MAX_LENGTH": 512,
    # No express option: parts of key names whose values the admin pages mask.
    # None: a built-in list ("password", "token", "secret", ...).
    "ADMIN_SENSITIVE_KEYS": None,
    # No express option: the largest session data a save accepts, in bytes of JSON;
    # a bigger one fails at save time, naming its largest keys. None: no limit.
    "MAX_SIZE": 256 * 1024,
    # No express option: how many levels of lists and dicts one session value may nest;
    # a deeper one fails at save time, naming its key. None: no limit of our own.
    "MAX_DEPTH": 100,
    # No express option: with COMPAT="express", a callable (value, request) -> Django user that
    # signs in the user an Express login put at EXPRESS_USER_KEY (see docs/express-interop.md).
    "EXPRESS_USER_LOADER": None,
    "EXPRESS_USER_KEY": "user",
    # No express option: a session ends after this many seconds without a request that
    # uses it (sliding), and this many seconds after it started or its user signed in,
    # whatever the activity. None: no limit. Try EXAMPLE_IDLE_TIMEOUT=20 (seconds).
    "IDLE_TIMEOUT": _seconds("EXAMPLE_IDLE_TIMEOUT"),
    "ABSOLUTE_TIMEOUT": _seconds("EXAMPLE_ABSOLUTE_TIMEOUT"),
    # No express option: the longest life of a session nobody signed in to (bots and
    # health checks otherwise fill the store). None: as long as MAX_AGE.
    "ANONYMOUS_MAX_AGE": _seconds("EXAMPLE_ANONYMOUS_MAX_AGE"),
    # touchAfter (connect-mongo): an unchanged session is touched at most once per this many
    # seconds. None: with IDLE_TIMEOUT, a tenth of it (at most a minute); else every request.
    "TOUCH_AFTER": None,
    # No express option: a password change (update_session_auth_hash) ends the user's other
    # sessions at once.
    "END_SESSIONS_ON_PASSWORD_CHANGE": True,
    # No express option: the most sessions one user keeps; a login past it ends the user's
    # least recently seen session ("evict_oldest") or fails with MAX_SESSIONS_MESSAGE
    # ("refuse"; the login page shows it). None: no limit. Try EXAMPLE_MAX_SESSIONS=2, and
    # EXAMPLE_MAX_SESSIONS_POLICY=refuse, then sign in from three browsers.
    "MAX_SESSIONS_PER_USER": int(os.environ.get("EXAMPLE_MAX_SESSIONS") or 0) or None,
    "MAX_SESSIONS_POLICY": os.environ.get("EXAMPLE_MAX_SESSIONS_POLICY") or "evict_oldest",
    "MAX_SESSIONS_MESSAGE": None,  # None: the built-in message; "{limit}" is replaced
    # No express option: the audit trail. Ended sessions are kept this many seconds, with how
    # each started and ended (the admin, the sessions page, listsessions --ended). 0: off.
    # Try EXAMPLE_KEEP_ENDED=86400.
    "KEEP_ENDED": int(os.environ.get("EXAMPLE_KEEP_ENDED") or 0),
}

ROOT_URLCONF = "example_project.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "whoami"

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
                "example_project.tutorial.views.navigation",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SESSIONKIT_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
        # WAL: readers do not wait for the writer, and a commit does not wait for a full
        # sync of the database file (session writes on every request stay cheap).
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
