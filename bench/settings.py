"""Settings of the benchmark app; ``BENCH_ENGINE`` picks the session engine.

Engines: ``sk_sqlite``, ``sk_pg``, ``sk_redis`` (django-sessionkit on each store),
``sk_express`` (django-sessionkit with ``COMPAT="express"`` on ``ExpressRedisStore``),
``db_sqlite``, ``db_pg`` (Django's ``db`` engine), ``cache_redis`` (Django's ``cache``
engine on ``django.core.cache.backends.redis.RedisCache``), ``signed_cookies`` and
``none`` (no session middleware at all: the ceiling).

``BENCH_SQLITE`` (a file), ``BENCH_PG_DB`` (a database on 127.0.0.1:5432) and
``BENCH_REDIS_URL`` (a redis-server of the benchmark's own) say where things live.
``BENCH_REDIS_PREFIX`` is the Redis stores' key prefix; ``BENCH_SOAK=1`` adds the fault
runs' reporting middleware (``bench/soak_views.py``; ``bash bench/soak``).
"""

from __future__ import annotations

import os

ENGINE = os.environ.get("BENCH_ENGINE", "sk_sqlite")
ENGINES = (
    "sk_sqlite",
    "sk_pg",
    "sk_redis",
    "sk_express",
    "db_sqlite",
    "db_pg",
    "cache_redis",
    "signed_cookies",
    "floor_redis",
    "none",
)
if ENGINE not in ENGINES:
    raise RuntimeError(f"BENCH_ENGINE={ENGINE!r}: use one of {', '.join(ENGINES)}")

SQLITE_PATH = os.environ.get("BENCH_SQLITE", "/tmp/sessionkit-bench.sqlite3")
PG_DB = os.environ.get("BENCH_PG_DB", "")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:7390")
REDIS_PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "bench:")
SOAK = bool(os.environ.get("BENCH_SOAK"))

SECRET_KEY = "bench-only-secret-key-not-for-production-0123456789abcdef"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.urls"
WSGI_APPLICATION = "bench.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_sessionkit",
    # For the ``db`` engine's table and for Django's own ``clearsessions``.
    "django.contrib.sessions",
    "bench.apps.BenchConfig",
]

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
            ]
        },
    }
]

SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH, "OPTIONS": {"timeout": 30}}
POSTGRES: dict[str, object] = {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": "127.0.0.1",
    "PORT": 5432,
    "USER": "postgres",
    "NAME": PG_DB or "postgres",
}
if os.environ.get("BENCH_SERVER") == "uvicorn":
    # Under ASGI persistent connections belong to threads and leak: use Django's pool.
    POSTGRES["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 4, "timeout": 10}}
else:
    # Persistent connections, as any production site has them (Django's default, 0, would
    # open a PostgreSQL connection per request and hide every other cost).
    POSTGRES["CONN_MAX_AGE"] = 600
ON_PG = ENGINE in ("sk_pg", "db_pg") or os.environ.get("BENCH_DEFAULT_DB") == "pg"
DATABASES = {"default": POSTGRES if ON_PG else SQLITE}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"{REDIS_URL}/1",
    }
}

SESSION_ENGINE = {
    "db_sqlite": "django.contrib.sessions.backends.db",
    "db_pg": "django.contrib.sessions.backends.db",
    "cache_redis": "django.contrib.sessions.backends.cache",
    "signed_cookies": "django.contrib.sessions.backends.signed_cookies",
}.get(ENGINE, "django_sessionkit.engine")
if ENGINE in ("none", "floor_redis"):  # no sessions; keep the checks quiet about the engine
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

SESSIONKIT: dict[str, object] = {}
if ENGINE == "sk_redis":
    SESSIONKIT["STORE"] = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": f"{REDIS_URL}/0",
        "OPTIONS": {"PREFIX": REDIS_PREFIX},
    }
elif ENGINE == "sk_express":  # connect-redis's layout, database 4 (floor_redis has 3)
    SESSIONKIT["COMPAT"] = "express"
    SESSIONKIT["STORE"] = {
        "BACKEND": "django_sessionkit.stores.express.ExpressRedisStore",
        "LOCATION": f"{REDIS_URL}/4",
        "OPTIONS": {"PREFIX": REDIS_PREFIX},
    }

# PostgreSQL's asynchronous commit for session writes: BENCH_SYNCHRONOUS_COMMIT=0.
if ENGINE == "sk_pg" and os.environ.get("BENCH_SYNCHRONOUS_COMMIT") == "0":
    SESSIONKIT["STORE"] = {"OPTIONS": {"SYNCHRONOUS_COMMIT": False}}

# The rolling read before and after TOUCH_AFTER: BENCH_ROLLING=1 BENCH_TOUCH_AFTER=60.
if os.environ.get("BENCH_ROLLING"):
    SESSIONKIT["ROLLING"] = True
if os.environ.get("BENCH_TOUCH_AFTER"):
    SESSIONKIT["TOUCH_AFTER"] = int(os.environ["BENCH_TOUCH_AFTER"])

if ENGINE == "none":
    SESSION_MIDDLEWARE: list[str] = []
elif ENGINE == "floor_redis":  # the budget's round trips and nothing else (bench/floor.py)
    SESSION_MIDDLEWARE = ["bench.floor.RoundTrips"]
elif ENGINE.startswith("sk_"):
    SESSION_MIDDLEWARE = ["django_sessionkit.middleware.SessionMiddleware"]
else:
    SESSION_MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]

# The throughput cases differ from the ceiling by the session middleware alone: nothing
# else is in the stack. (AuthenticationMiddleware used to be; under ASGI Django runs its
# process_request in a worker thread, a cost of Django's that every engine paid and the
# ceiling did not. login() does not need it.)
MIDDLEWARE = [*SESSION_MIDDLEWARE]
if SOAK:  # outside the session middleware: sees every response, the 503s included
    MIDDLEWARE.insert(0, "bench.soak_views.report")
if os.environ.get("BENCH_ADMIN"):  # the admin pages need the rest of the usual stack
    MIDDLEWARE += [
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
# The benchmark keeps the middleware stack to the session alone (the admin gets the rest
# under BENCH_ADMIN), and the ceiling has no session middleware at all.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]
if ENGINE == "sk_express":  # the warning that ids are stored raw in this mode (by design)
    SILENCED_SYSTEM_CHECKS.append("sessionkit.W002")
