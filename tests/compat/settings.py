"""Settings for the compatibility module: the engine beside the apps people install with it.

Everything lives in one project, as it would in a real one: allauth (account, mfa,
usersessions), axes, django-otp + two-factor-auth, REST framework, hijack, the debug
toolbar and Channels. The database is PostgreSQL (column lengths are enforced there);
when it cannot be reached the settings fall back to SQLite so that collection works,
and every test skips (fails under CI=true) saying how to start PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.settings import PG_HOST, PG_PORT, POSTGRES_AVAILABLE

HERE = Path(__file__).resolve().parent

SECRET_KEY = "compat-tests-only-secret-key-not-for-production-0123456789"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INTERNAL_IPS = ["127.0.0.1"]
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.humanize",  # allauth.usersessions' list page uses it
    "django.contrib.messages",
    "django.contrib.sites",
    "django.contrib.staticfiles",
    "django_sessionkit",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_totp",
    "two_factor",
    "rest_framework",
    "hijack",
    "debug_toolbar",
    "channels",
    "tests.compat.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "debug_toolbar.middleware.DebugToolbarMiddleware",
    "django_sessionkit.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "hijack.middleware.HijackUserMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks
]

SESSION_ENGINE = "django_sessionkit.engine"
SESSIONKIT: dict[str, object] = {}
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first, as axes asks
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/auth/login/"
LOGIN_REDIRECT_URL = "/whoami/"
LOGOUT_REDIRECT_URL = "/whoami/"

ROOT_URLCONF = "tests.compat.urls"
STATIC_URL = "/static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# allauth: username logins, no e-mail verification, no rate limits (tests log in often).
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_RATE_LIMITS = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_TOLERANCE = 1  # a code computed just before a 30 s boundary is still accepted

# axes: three failures lock a username out (from that address); a success resets the count.
AXES_FAILURE_LIMIT = 3
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# django-otp slows retries after a wrong token; the tests send a wrong one, then the right one.
OTP_TOTP_THROTTLE_FACTOR = 0

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

# The debug toolbar shows with its default SHOW_TOOLBAR_CALLBACK: DEBUG = True (its test
# turns it on) and a client in INTERNAL_IPS (the test client's 127.0.0.1).

ASGI_APPLICATION = "tests.compat.consumers.application"

DATABASES: dict[str, dict[str, object]] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
if POSTGRES_AVAILABLE:
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "USER": "postgres",
        "NAME": "test",
        # The server is shared: a name of our own, unique per test run.
        "TEST": {"NAME": f"test_sessionkit_compat_{os.getpid()}"},
    }
