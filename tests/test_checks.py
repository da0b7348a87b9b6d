"""Every system check fires, with a message naming the key, the value and what is accepted."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_sessionkit.checks import sessionkit_checks
from django_sessionkit.middleware import SessionMiddleware

OURS = "django_sessionkit.middleware.SessionMiddleware"
DJANGOS = "django.contrib.sessions.middleware.SessionMiddleware"


def messages_for(config: Any) -> list[tuple[str, str]]:
    with override_settings(SESSIONKIT=config):
        return [(m.id or "", m.msg) for m in sessionkit_checks()]


def test_a_valid_configuration_passes() -> None:
    config = {
        "SECRET": ["new", "old"],
        "NAME": "connect.sid",
        "COOKIE": {
            "MAX_AGE": 1800,
            "HTTP_ONLY": True,
            "SECURE": "AUTO",
            "SAME_SITE": "lax",
            "DOMAIN": None,
            "PATH": "/",
            "PARTITIONED": False,
            "PRIORITY": "high",
        },
        "GENID": "django_sessionkit.cookies.new_id",
        "PROXY": True,
        "RESAVE": False,
        "ROLLING": True,
        "SAVE_UNINITIALIZED": False,
        "STORE": {
            "BACKEND": "django_sessionkit.stores.database.DatabaseStore",
            "LOCATION": "default",
        },
        "UNSET": "Destroy",
        "SIGNED": True,
        "COMPAT": None,
        "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
        "TRUSTED_PROXIES": 2,
        "MAX_DEPTH": 1,
    }
    assert messages_for(config) == []
    assert messages_for({}) == []
    assert messages_for({"MAX_DEPTH": None}) == []
    assert messages_for({"MAX_DEPTH": 10_000}) == []


@pytest.mark.parametrize(
    ("config", "check_id", "fragments"),
    [
        (["not", "a", "dict"], "sessionkit.E001", ["must be a dict"]),
        ({"SECRETS": "x"}, "sessionkit.E002", ["unknown key 'SECRETS'", "Did you mean 'SECRET'"]),
        ({"SECRET": ""}, "sessionkit.E003", ["SECRET", "empty", "non-empty string"]),
        ({"SECRET": []}, "sessionkit.E003", ["SECRET", "empty"]),
        ({"SECRET": ["ok", ""]}, "sessionkit.E003", ["empty or non-string entry"]),
        ({"SECRET": 42}, "sessionkit.E003", ["'int'"]),
        ({"NAME": "my session"}, "sessionkit.E004", ["'my session'", "cookie name"]),
        ({"COOKIE": "x"}, "sessionkit.E005", ["COOKIE", "must be a dict"]),
        ({"COOKIE": {"MAXAGE": 1}}, "sessionkit.E005", ["'MAXAGE'", "MAX_AGE"]),
        ({"COOKIE": {"MAX_AGE": -1}}, "sessionkit.E006", ["MAX_AGE", "-1", ">= 0"]),
        ({"COOKIE": {"MAX_AGE": "60"}}, "sessionkit.E006", ["'60'"]),
        (
            {"COOKIE": {"HTTP_ONLY": "yes"}},
            "sessionkit.E007",
            ["HTTP_ONLY", "'yes'", "True or False"],
        ),
        ({"COOKIE": {"SECURE": "always"}}, "sessionkit.E008", ["SECURE", "'always'", "'auto'"]),
        (
            {"COOKIE": {"SAME_SITE": "loose"}},
            "sessionkit.E009",
            ["SAME_SITE", "'loose'", "'Strict'"],
        ),
        ({"COOKIE": {"SAME_SITE": "None", "SECURE": False}}, "sessionkit.E010", ["without Secure"]),
        ({"COOKIE": {"PATH": "app"}}, "sessionkit.E011", ["PATH", "'app'"]),
        ({"COOKIE": {"DOMAIN": 3}}, "sessionkit.E011", ["DOMAIN"]),
        ({"COOKIE": {"PRIORITY": "urgent"}}, "sessionkit.E012", ["PRIORITY", "'urgent'", "'High'"]),
        ({"GENID": "no.such.module.genid"}, "sessionkit.E013", ["GENID", "cannot be imported"]),
        ({"GENID": 5}, "sessionkit.E013", ["GENID", "dotted path"]),
        ({"PROXY": "yes"}, "sessionkit.E014", ["PROXY", "None, True or False"]),
        ({"RESAVE": 1}, "sessionkit.E015", ["RESAVE", "True or False"]),
        ({"ROLLING": "no"}, "sessionkit.E015", ["ROLLING"]),
        ({"SAVE_UNINITIALIZED": None}, "sessionkit.E015", ["SAVE_UNINITIALIZED"]),
        ({"SIGNED": "true"}, "sessionkit.E015", ["SIGNED"]),
        ({"STORE": "redis"}, "sessionkit.E016", ["STORE", "must be a dict"]),
        ({"STORE": {"BACKEND": "x.Y", "LOCTION": 1}}, "sessionkit.E016", ["'LOCTION'", "LOCATION"]),
        ({"STORE": {"OPTIONS": []}}, "sessionkit.E016", ["OPTIONS", "must be a dict"]),
        (
            {"STORE": {"BACKEND": "no.such.Store"}},
            "sessionkit.E017",
            ["'no.such.Store'", "cannot be imported"],
        ),
        (
            {"STORE": {"BACKEND": "django_sessionkit.conf.Settings"}},
            "sessionkit.E017",
            ["Store subclass"],
        ),
        ({"STORE": {"LOCATION": "nope"}}, "sessionkit.E018", ["'nope' is not a database alias"]),
        ({"UNSET": "forget"}, "sessionkit.E019", ["UNSET", "'forget'", "'keep' or 'destroy'"]),
        ({"COMPAT": "rails"}, "sessionkit.E020", ["COMPAT", "'rails'", "'express'"]),
        (
            {"CLIENT_IP_HEADER": "X-Forwarded-For"},
            "sessionkit.E023",
            ["CLIENT_IP_HEADER", "HTTP_X_FORWARDED_FOR"],
        ),
        ({"TRUSTED_PROXIES": 0}, "sessionkit.E024", ["TRUSTED_PROXIES", ">= 1"]),
        ({"MAX_SIZE": 0}, "sessionkit.E026", ["MAX_SIZE", "bytes", "None"]),
        ({"MAX_DEPTH": 0}, "sessionkit.E030", ["SESSIONKIT['MAX_DEPTH'] is 0", ">= 1", "None"]),
        ({"MAX_DEPTH": -5}, "sessionkit.E030", ["MAX_DEPTH", "levels"]),
        ({"MAX_DEPTH": True}, "sessionkit.E030", ["MAX_DEPTH", "is True"]),
        ({"MAX_DEPTH": 2.5}, "sessionkit.E030", ["MAX_DEPTH", "is 2.5", "whole number"]),
        ({"MAX_DEPTH": "100"}, "sessionkit.E030", ["MAX_DEPTH", "is '100'"]),
        ({"COMPAT": "express"}, "sessionkit.E027", ["COMPAT", "connect-redis"]),
        ({"COMPAT": "express"}, "sessionkit.W002", ["stored raw"]),
        (
            {
                "STORE": {
                    "BACKEND": "django_sessionkit.stores.express.ExpressRedisStore",
                    "LOCATION": "redis://127.0.0.1:6399/0",
                }
            },
            "sessionkit.E027",
            ["COMPAT", "hashed ids"],
        ),
        (
            {"COMPAT": "express", "EXPRESS_USER_LOADER": "no.such.loader"},
            "sessionkit.E028",
            ["EXPRESS_USER_LOADER", "cannot be imported"],
        ),
        ({"COMPAT": "express", "EXPRESS_USER_KEY": ""}, "sessionkit.E028", ["EXPRESS_USER_KEY"]),
        ({"ADMIN_SENSITIVE_KEYS": "token"}, "sessionkit.E025", ["ADMIN_SENSITIVE_KEYS", "list"]),
        ({"ADMIN_SENSITIVE_KEYS": ["ok", ""]}, "sessionkit.E025", ["non-empty strings"]),
        ({"COOKIE": {"PARTITIONED": True, "SECURE": False}}, "sessionkit.W001", ["Partitioned"]),
    ],
)
def test_each_wrong_value_is_reported(config: Any, check_id: str, fragments: list[str]) -> None:
    found = [msg for id_, msg in messages_for(config) if id_ == check_id]
    assert found, (check_id, messages_for(config))
    for fragment in fragments:
        assert any(fragment in msg for msg in found), (fragment, found)


def test_both_session_middlewares_installed() -> None:
    with override_settings(MIDDLEWARE=[DJANGOS, OURS]):
        ids = [m.id for m in sessionkit_checks()]
    assert "sessionkit.E021" in ids


def test_our_engine_without_our_middleware() -> None:
    with override_settings(MIDDLEWARE=[DJANGOS]):
        msgs = [m for m in sessionkit_checks() if m.id == "sessionkit.E022"]
    assert msgs and OURS in msgs[0].msg


def test_our_middleware_with_another_engine() -> None:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db"):
        msgs = [m for m in sessionkit_checks() if m.id == "sessionkit.E022"]
    assert msgs and "SESSION_ENGINE is 'django.contrib.sessions.backends.db'" in msgs[0].msg


def test_manage_py_check_fails_on_a_wrong_setting() -> None:
    with override_settings(SESSIONKIT={"UNSET": "forget"}), pytest.raises(SystemCheckError) as exc:
        call_command("check")
    assert "sessionkit.E019" in str(exc.value)


def test_the_middleware_refuses_to_start_misconfigured() -> None:
    with (
        override_settings(SESSIONKIT={"COOKIE": {"MAX_AGE": -5}}),
        pytest.raises(ImproperlyConfigured, match=r"sessionkit.E006: .*MAX_AGE"),
    ):
        SessionMiddleware(lambda request: None)  # type: ignore[arg-type, return-value]


# --- Redis LOCATION URLs that redis-py would refuse or read differently (E029) -----------

REDIS_STORE = "django_sessionkit.stores.redis.RedisStore"
EXPRESS_STORE = "django_sessionkit.stores.express.ExpressRedisStore"
LOCATION_KEY = "SESSIONKIT['STORE']['LOCATION']"


def store_messages(location: Any, options: Any = None, backend: str = REDIS_STORE) -> list[Any]:
    store = {"BACKEND": backend, "LOCATION": location, "OPTIONS": options or {}}
    config: dict[str, Any] = {"STORE": store}
    if backend == EXPRESS_STORE:
        config["COMPAT"] = "express"
    with override_settings(SESSIONKIT=config):
        return [m for m in sessionkit_checks() if m.is_serious()]


@pytest.mark.parametrize(
    ("location", "options", "fragment"),
    [
        ("redis:/cache.internal", {}, "has no '//' after 'redis:' (did you mean 'redis://cache"),
        ("redis:cache.internal:6379", {}, "did you mean 'redis://cache.internal:6379'?"),
        ("rediss:/cache.internal", {}, "did you mean 'rediss://cache.internal'?"),
        ("unix:/run/redis.sock", {}, "did you mean 'unix:///run/redis.sock'?"),
        ("redis://cache.internal:6379/abc", {}, "has database 'abc': a database is a whole"),
        ("redis://cache.internal/-1", {}, "has database '-1'"),
        ("redis://cache.internal/1/2", {}, "has database '1/2'"),
        ("redis://cache.internal/0?db=two", {}, "has database 'two'"),
        ("memcached://cache.internal:11211", {}, "has scheme 'memcached'"),
        ("http://cache.internal/0", {}, "has scheme 'http'"),
        ("cache.internal:6379", {}, "has scheme 'cache.internal'"),
        ("REDIS://cache.internal/0", {}, "takes in lower case only"),
        ("redis://cache.internal:99999/0", {}, "has port '99999', which is not a port number"),
        ("redis://cache.internal:six/0", {}, "has port 'six'"),
        ("redis://cache.internal/0?socket_timeout=soon", {}, "refused by redis-py (Invalid value"),
        ("unix://run/redis.sock", {}, "names a host ('run') before the socket path"),
        ("unix://", {}, "has no socket path"),
        ("redis://:pw@mymaster/abc", {"SENTINELS": ["127.0.0.1:26379"]}, "has database 'abc'"),
    ],
)
def test_a_redis_url_redis_py_would_refuse_fails_the_check(
    location: str, options: dict[str, Any], fragment: str
) -> None:
    messages = store_messages(location, options)
    assert [m.id for m in messages] == ["sessionkit.E029"], messages  # one error, not two
    text = messages[0].msg
    assert text.startswith(f"{LOCATION_KEY} '{location.replace(':pw@', ':***@')}' "), text
    assert fragment in text
    for form in ("redis://", "rediss://"):
        assert form in text.split("Accepted")[1]
    if not options:
        assert "unix:///path/to/redis.sock" in text


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        (["10.0.0.1:7000", "redis:/10.0.0.2:7000"], "entry 'redis:/10.0.0.2:7000' has no '//'"),
        (["10.0.0.1:7000", "10.0.0.2:port"], "entry '10.0.0.2:port' has port 'port'"),
        (["redis://10.0.0.1:7000/3"], "has database '3', but a Redis Cluster has only database 0"),
        (["unix:///run/redis.sock"], "is a unix socket, but a Redis Cluster is reached over TCP"),
    ],
)
def test_a_cluster_entry_redis_py_would_refuse_fails_the_check(
    location: list[str], fragment: str
) -> None:
    messages = store_messages(location)
    assert [m.id for m in messages] == ["sessionkit.E029"], messages
    assert messages[0].msg.startswith(f"{LOCATION_KEY} entry ")
    assert fragment in messages[0].msg
    assert "host:port" in messages[0].msg.split("Accepted in cluster mode")[1]


@pytest.mark.parametrize(
    ("location", "options"),
    [
        ("redis://127.0.0.1:6379/0", {}),
        ("redis://cache.internal", {}),
        ("redis://cache.internal/", {}),
        ("redis://user:p%40ss@cache.internal:6379/15", {}),
        ("rediss://:secret@cache.example:6380/1", {"SSL_CERT_REQS": "required"}),
        ("redis://[::1]:6379/2?socket_timeout=2", {}),
        ("unix:///run/redis/redis-server.sock?db=3", {}),
        (["10.0.0.1:7000", "redis://10.0.0.2:7000", "rediss://10.0.0.3:7000/0"], {}),
        ("redis://:pw@mymaster/2", {"SENTINELS": ["127.0.0.1:26379"]}),
        (None, {"SENTINELS": ["127.0.0.1:26379"], "SERVICE_NAME": "mymaster"}),
    ],
)
def test_redis_urls_redis_py_accepts_pass_the_check(location: Any, options: dict[str, Any]) -> None:
    assert store_messages(location, options) == []


def test_the_express_store_checks_its_urls_the_same_way() -> None:
    messages = store_messages("redis:/cache.internal", backend=EXPRESS_STORE)
    assert [m.id for m in messages] == ["sessionkit.E029"]
    assert messages[0].msg.startswith(f"{LOCATION_KEY} 'redis:/cache.internal' has no '//'")
    assert store_messages("redis://cache.internal/0", backend=EXPRESS_STORE) == []


def test_the_store_still_reports_what_is_not_about_the_url() -> None:
    ids = [m.id for m in store_messages("redis:/cache.internal", {"RETRY_ATTEMPTS": 99})]
    assert sorted(ids) == ["sessionkit.E018", "sessionkit.E029"]


def test_manage_py_check_and_the_middleware_refuse_a_bad_redis_url() -> None:
    store = {"BACKEND": REDIS_STORE, "LOCATION": "redis://cache.internal:6379/abc"}
    with override_settings(SESSIONKIT={"STORE": store}):
        with pytest.raises(SystemCheckError) as exc:
            call_command("check")
        assert "sessionkit.E029" in str(exc.value)
        assert f"{LOCATION_KEY} 'redis://cache.internal:6379/abc'" in str(exc.value)
        with pytest.raises(ImproperlyConfigured, match=r"sessionkit.E029: .*has database 'abc'"):
            SessionMiddleware(lambda request: None)  # type: ignore[arg-type, return-value]


# --- half-configured installs are refused before serving ---------------------------

_SETUP = """
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="x" * 50,
    INSTALLED_APPS={apps!r},
    MIDDLEWARE={middleware!r},
    SESSION_ENGINE="django_sessionkit.engine",
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}},
    ROOT_URLCONF=__name__,
)
urlpatterns = []
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
from django.contrib.auth import login
from django.http import HttpRequest
from importlib import import_module
import_module(settings.SESSION_ENGINE)
print("served")
"""
_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]


def _start_server(apps: list[str], middleware: list[str]) -> subprocess.CompletedProcess[str]:
    code = _SETUP.format(apps=apps, middleware=middleware)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_engine_without_the_app_installed_is_refused_naming_the_fix() -> None:
    started = _start_server(_APPS, ["django_sessionkit.middleware.SessionMiddleware"])
    assert started.returncode != 0 and "served" not in started.stdout
    assert "ImproperlyConfigured" in started.stderr
    assert '"django_sessionkit" is not in INSTALLED_APPS' in started.stderr


def test_djangos_session_middleware_in_front_of_the_engine_is_refused_at_start_up() -> None:
    started = _start_server(
        [*_APPS, "django_sessionkit"], ["django.contrib.sessions.middleware.SessionMiddleware"]
    )
    assert started.returncode != 0 and "served" not in started.stdout
    assert "ImproperlyConfigured" in started.stderr
    assert "Replace it with 'django_sessionkit.middleware.SessionMiddleware'" in started.stderr


def test_a_complete_install_serves() -> None:
    started = _start_server(
        [*_APPS, "django_sessionkit"], ["django_sessionkit.middleware.SessionMiddleware"]
    )
    assert started.returncode == 0, started.stderr
    assert "served" in started.stdout


def test_a_user_agent_longer_than_its_column_is_refused() -> None:
    with override_settings(SESSIONKIT={"USER_AGENT_MAX_LENGTH": 2048}):
        errors = [e for e in sessionkit_checks() if e.id == "sessionkit.E024"]
    assert errors and "at most 1024" in errors[0].msg
    with override_settings(SESSIONKIT={"USER_AGENT_MAX_LENGTH": 1024}):
        assert not [e for e in sessionkit_checks() if e.id == "sessionkit.E024"]
