"""importsessions: Django's db / cached_db table (SQLite, PostgreSQL), its cache engine (Redis)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.cache import SessionStore as DjangoCacheSession
from django.contrib.sessions.backends.db import SessionStore as DjangoDbSession
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, models
from django.test import Client, RequestFactory, override_settings
from django.test.utils import isolate_apps
from django.utils import timezone
from django.utils.crypto import get_random_string

from django_sessionkit.engine import IMPORTED_KEY, SessionStore, store_key
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Changes
from tests.redis_fixtures import redis_servers, redis_standalone
from tests.redis_servers import Standalone

__all__ = ["redis_servers", "redis_standalone"]  # fixtures

pytestmark = pytest.mark.django_db


@contextmanager
def django_session_table(alias: str = "default") -> Iterator[type[models.Model]]:
    """Django's own ``django_session`` table (django.contrib.sessions is not installed)."""
    with isolate_apps("tests.testapp"):

        class DjangoSession(AbstractBaseSession):
            class Meta:
                app_label = "testapp"
                db_table = "django_session"

        connection = connections[alias]
        sql, params = connection.schema_editor().table_sql(DjangoSession)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        try:
            yield DjangoSession
        finally:
            if not connection.features.can_rollback_ddl:  # MySQL: a rollback would keep it
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP TABLE {connection.ops.quote_name('django_session')}")


def django_session(
    table: type[models.Model],
    data: dict[str, Any],
    *,
    alias: str = "default",
    expires_in: timedelta = timedelta(days=1),
    raw: str | None = None,
) -> str:
    """A row as Django's db engine writes it; returns its session key (the old cookie)."""
    key = get_random_string(32, VALID_KEY_CHARS)
    table._default_manager.using(alias).create(
        session_key=key,
        session_data=DjangoDbSession().encode(data) if raw is None else raw,
        expire_date=timezone.now() + expires_in,
    )
    return key


def run(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("importsessions", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def signed_in_data(user: Any) -> dict[str, Any]:
    return {
        SESSION_KEY: str(user.pk),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": user.get_session_auth_hash(),
        "cart": [1, 2],
    }


# --- db / cached_db -------------------------------------------------------------


def test_import_from_the_db_table(user: Any) -> None:
    with django_session_table() as table:
        alices = django_session(table, signed_in_data(user))
        anonymous = django_session(table, {"theme": "dark"}, expires_in=timedelta(hours=3))
        expired = django_session(table, {"old": True}, expires_in=-timedelta(minutes=1))
        out, err = run("--from", "db", "--batch-size", "1")
    assert "Imported 2 of 2 live sessions from table django_session" in out
    assert "0 were already there." in out and err == ""
    store = get_store()
    record = store.load(store_key(alices))
    assert record is not None and record.data == {**signed_in_data(user), IMPORTED_KEY: True}
    assert record.user_id == str(user.pk)
    assert abs((record.expires_at - timezone.now()).total_seconds() - 86400) < 60
    assert record.last_seen <= timezone.now()
    anon = store.load(store_key(anonymous))
    assert (
        anon is not None
        and anon.user_id is None
        and anon.data == {"theme": "dark", IMPORTED_KEY: True}
    )
    assert store.load(store_key(expired)) is None
    assert store.count() == 2


def test_reimport_neither_duplicates_nor_clobbers_newer_data(user: Any) -> None:
    with django_session_table() as table:
        key = django_session(table, {"views": 1})
        run("--from", "cached_db")
        store = get_store()
        record = store.load(store_key(key))
        assert record is not None
        record.data = {"views": 2}
        store.save(store_key(key), record, changes=Changes(set={"views": 2}))
        out, err = run("--from", "db")
    assert "Imported 0 of 1 live sessions" in out and "1 were already there" in out
    assert "second import" in err and "empty the old session table" in err
    record = store.load(store_key(key))
    assert record is not None and record.data == {"views": 2}
    assert store.count() == 1


def test_import_dry_run_writes_nothing() -> None:
    with django_session_table() as table:
        django_session(table, {"a": 1})
        django_session(table, {"b": 2})
        out, _ = run("--from", "db", "--dry-run")
    assert "Dry run: would import 2 of 2 live sessions" in out and "Nothing was changed" in out
    assert get_store().count() == 0


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("pg", marks=pytest.mark.django_db(databases=["default", "pg"])),
        # MySQL commits on CREATE/DROP TABLE, so no test transaction can undo this test:
        # a transactional test empties the tables afterwards instead.
        pytest.param(
            "mysql",
            marks=pytest.mark.django_db(transaction=True, databases=["default", "mysql"]),
        ),
    ],
    ids=["postgresql", "mysql"],
)
def test_import_from_a_database_server_into_the_same_one(
    server: str, request: pytest.FixtureRequest, user: Any
) -> None:
    alias = request.getfixturevalue(f"{server}_alias")
    with (
        override_settings(SESSIONKIT={"STORE": {"LOCATION": alias}}),
        django_session_table(alias) as table,
    ):
        key = django_session(table, {"n": 1}, alias=alias)
        out, _ = run("--from", "db", "--database", alias)
        assert "Imported 1 of 1" in out
        record = get_store().load(store_key(key))
        assert record is not None and record.data == {"n": 1, IMPORTED_KEY: True}


def test_an_empty_source_is_a_command_error() -> None:
    with django_session_table() as table:
        django_session(table, {"gone": True}, expires_in=-timedelta(days=1))
        with pytest.raises(CommandError) as caught:
            run("--from", "db")
    message = str(caught.value)
    assert "Nothing to import" in message and "holds no live sessions" in message
    assert "--from (db, cached_db or cache)" in message


def test_a_source_not_in_djangos_format_is_a_command_error() -> None:
    with django_session_table() as table:
        django_session(table, {}, raw='{"not": "signed"}')
        django_session(table, {}, raw="eyJhIjoxfQ:1tZ:forged-signature")
        with pytest.raises(CommandError) as caught:
            run("--from", "db")
    message = str(caught.value)
    assert "does not hold Django session data" in message and "bad signature" in message
    assert "Nothing was imported" in message and "SECRET_KEY" in message
    assert get_store().count() == 0


def test_rows_that_do_not_decode_among_good_ones_are_skipped_and_reported() -> None:
    with django_session_table() as table:
        good = django_session(table, {"ok": 1})
        django_session(table, {}, raw="garbage")
        with override_settings(SECRET_KEY="another-secret-key-for-this-one-row-0123456789"):
            django_session(table, {"other": "secret"})
        out, err = run("--from", "db")
    assert "Imported 1 of 3" in out and "2 skipped" in out
    assert "Skipped 2: bad signature" in err
    assert get_store().exists(store_key(good))


def test_a_missing_table_unknown_database_or_source_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="has no django_session table"):
        run("--from", "db")
    with pytest.raises(CommandError, match=r"--database 'elsewhere' is not in DATABASES"):
        run("--from", "db", "--database", "elsewhere")
    with pytest.raises(CommandError, match=r"--from 'file' is not accepted: use db, cached_db"):
        run("--from", "file")


# --- the old cookie ---------------------------------------------------------------


def test_the_engine_finds_an_imported_session_by_its_old_id(user: Any) -> None:
    with django_session_table() as table:
        key = django_session(table, signed_in_data(user))
        run("--from", "db")
    session = SessionStore.for_request(RequestFactory().get("/"), key)
    assert session[SESSION_KEY] == str(user.pk)


@override_settings(SESSIONKIT={"SIGNED": False})
def test_an_old_cookie_keeps_working_with_unsigned_cookies(client: Client, user: Any) -> None:
    with django_session_table() as table:
        key = django_session(table, signed_in_data(user))
        run("--from", "db")
    client.cookies["sessionid"] = key
    assert client.get("/whoami/").json() == {"user": "alice"}


def test_an_old_django_cookie_signs_in_once_and_is_rotated(client: Client, user: Any) -> None:
    with django_session_table() as table:
        key = django_session(table, signed_in_data(user))
        run("--from", "db")
    client.cookies["sessionid"] = key
    assert client.get("/whoami/").json() == {"user": "alice"}
    new_cookie = unquote(client.cookies["sessionid"].value)
    assert new_cookie.startswith("s:") and key not in new_cookie
    assert get_store().load(store_key(key)) is None  # the old id is dead
    assert client.get("/count/").json() == {"views": 1}
    assert client.get("/whoami/").json() == {"user": "alice"}
    record = get_store().list()[0][1]
    assert record.data["cart"] == [1, 2]
    replay = Client()
    replay.cookies["sessionid"] = key
    assert replay.get("/whoami/").json() == {"user": None}


def test_a_django_style_cookie_that_was_never_imported_is_anonymous(client: Client) -> None:
    client.cookies["sessionid"] = get_random_string(32, VALID_KEY_CHARS)
    assert client.get("/whoami/").json() == {"user": None}
    assert get_store().count() == 0


def test_an_old_cookie_survives_a_server_error_and_works_async(client: Client, user: Any) -> None:
    with django_session_table() as table:
        key = django_session(table, signed_in_data(user))
        run("--from", "db")
    client.cookies["sessionid"] = key
    assert client.get("/error/").status_code == 500
    assert get_store().exists(store_key(key))  # not rotated away on a 5xx
    assert client.get("/async/read/").json()["user"] == "alice"
    assert unquote(client.cookies["sessionid"].value).startswith("s:")
    assert not get_store().exists(store_key(key))


# --- cache --------------------------------------------------------------------------


@pytest.fixture
def redis_cache(redis_standalone: Standalone) -> Iterator[str]:
    config = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_standalone.url,
        "KEY_PREFIX": f"imp{get_random_string(6)}",
    }
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": config,
    }
    with override_settings(CACHES=caches_setting, SESSION_CACHE_ALIAS="sessions"):
        yield "sessions"
        client = caches["sessions"]._cache.get_client(None, write=True)  # type: ignore[attr-defined]
        for key in client.scan_iter(match=config["KEY_PREFIX"] + ":*"):
            client.delete(key)


def cache_session(data: dict[str, Any], *, expiry: int | None = None) -> str:
    session = DjangoCacheSession()
    session.update(data)
    if expiry is not None:
        session.set_expiry(expiry)
    session.save()
    assert session.session_key is not None
    return session.session_key


def test_import_from_djangos_cache_engine_on_redis(redis_cache: str, user: Any) -> None:
    alices = cache_session(signed_in_data(user), expiry=600)
    others = [cache_session({"n": n}) for n in range(4)]
    caches[redis_cache].set("unrelated", "not a session")
    caches[redis_cache].set("django.contrib.sessions.cachebogus", ["not", "a", "dict"])
    out, err = run("--from", "cache", "--batch-size", "2")
    assert "Imported 5 of 6 live sessions from cache 'sessions'" in out and "1 skipped" in out
    assert "a list, not a session dict" in err
    record = get_store().load(store_key(alices))
    assert record is not None and record.user_id == str(user.pk)
    assert 500 < (record.expires_at - timezone.now()).total_seconds() <= 600
    assert all(get_store().exists(store_key(k)) for k in others)
    out, _ = run("--from", "cache")
    assert "Imported 0 of 6" in out and "5 were already there" in out


def test_a_cache_that_cannot_list_its_keys_is_a_command_error() -> None:
    with pytest.raises(CommandError) as caught:
        run("--from", "cache")
    message = str(caught.value)
    assert "cannot list its keys" in message
    assert "django.core.cache.backends.redis.RedisCache or django-redis" in message
    with pytest.raises(CommandError, match=r"--cache 'nope' is not in CACHES"):
        run("--from", "cache", "--cache", "nope")


def lowercase_genid(request: object) -> str:
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(32))


@override_settings(SESSIONKIT={"GENID": "tests.test_command_import.lowercase_genid"})
def test_an_unsigned_cookie_never_reaches_a_session_that_was_not_imported(client: Client) -> None:
    client.get("/count/")
    client.get("/count/")
    sid = SessionStore(client.cookies["sessionid"].value).session_id
    assert sid is not None and len(sid) == 32  # looks exactly like a Django key
    forger = Client()
    forger.cookies["sessionid"] = sid  # the bare id, without the signature
    assert forger.get("/count/").json() == {"views": 1}
    assert client.get("/count/").json() == {"views": 3}
