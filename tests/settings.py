"""Settings for the test suite: SQLite as "default", PostgreSQL as "pg" and MariaDB (or MySQL)
as "mysql" when they are reachable."""

from __future__ import annotations

import os
import tempfile

SECRET_KEY = "tests-only-secret-key-not-for-production-0123456789"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_sessionkit",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_sessionkit.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

SESSION_ENGINE = "django_sessionkit.engine"
SESSIONKIT: dict[str, object] = {}

ROOT_URLCONF = "tests.testapp.urls"
STATIC_URL = "/static/"
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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

PG_HOST = os.environ.get("SESSIONKIT_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SESSIONKIT_PG_PORT", "5432"))
MYSQL_HOST = os.environ.get("SESSIONKIT_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SESSIONKIT_MYSQL_PORT", "3306"))


def _postgres_reachable() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="test", connect_timeout=2
        ).close()
    except psycopg.Error:
        return False
    return True


def _mysql_driver() -> bool:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return False
    return True


def _mysql_reachable() -> bool:
    if not MYSQL_DRIVER:
        return False
    import MySQLdb

    try:
        MySQLdb.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user="root", database="test", connect_timeout=2
        ).close()
    except MySQLdb.Error:
        return False
    return True


DATABASES: dict[str, dict[str, object]] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
# A file-backed SQLite for tests where several threads write at once (the in-memory test
# database is shared through one connection, which would serialise them).
DATABASES["sqlite_file"] = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.path.join(tempfile.gettempdir(), f"sessionkit-{os.getpid()}.sqlite3"),
    "OPTIONS": {"timeout": 30},  # Django's defaults otherwise: no WAL, deferred transactions
    "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"test-sessionkit-{os.getpid()}.sqlite3")},
}
POSTGRES_AVAILABLE = _postgres_reachable()
if POSTGRES_AVAILABLE:
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "USER": "postgres",
        "NAME": "test",
        # The server is shared: a name of our own, unique per test run.
        "TEST": {"NAME": f"test_sessionkit_{os.getpid()}"},
    }
MYSQL_DRIVER = _mysql_driver()
MYSQL_AVAILABLE = _mysql_reachable()
if MYSQL_AVAILABLE:
    DATABASES["mysql"] = {
        "ENGINE": "django.db.backends.mysql",
        "HOST": MYSQL_HOST,
        "PORT": MYSQL_PORT,
        "USER": "root",
        "PASSWORD": "",
        "NAME": "test",
        # What docs/stores-database.md asks of MySQL and MariaDB: utf8mb4 on the connection
        # and in the table.
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {
            # The server is shared: a name of our own, unique per test run.
            "NAME": f"test_sessionkit_{os.getpid()}",
            "CHARSET": "utf8mb4",
            # A Unicode (UCA) collation, like MySQL 8's and MariaDB 11's defaults: there
            # punctuation does not sort in byte order (";" before ":"), which text ranges over
            # addresses must survive.
            "COLLATION": "utf8mb4_unicode_ci",
        },
    }
