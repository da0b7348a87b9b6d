"""Expiry events: the batched purge reports each session that expired, once, on every store.

Redis drops expired records by itself and MongoDB's TTL monitor may too; the events do not
depend on either (nor on Redis keyspace notifications): the purge that removes a session's
last trace is the one that reports it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.test import Client, override_settings

from django_sessionkit import lifecycle, signals
from django_sessionkit.engine import SessionStore
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import SessionRecord, Store, utcnow
from tests.command_helpers import run
from tests.test_concurrency import store_alias  # noqa: F401  (a fixture)
from tests.test_lifetimes import key_of, lifetimes, rewrite, signed_in

pytestmark = pytest.mark.django_db

HOUR, DAY = 3600, 86400
SOON = timedelta(milliseconds=300)


@pytest.fixture
def ended() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def receiver(sender: Any, **kwargs: Any) -> None:
        with lock:
            seen.append(kwargs)

    signals.session_ended.connect(receiver, weak=False)
    yield seen
    signals.session_ended.disconnect(receiver)


@pytest.fixture
def store(each_store: Store, request: pytest.FixtureRequest) -> Iterator[Store]:
    """Each store; MongoDB's without its TTL index, whose monitor (nx-27017's runs at any
    moment) would delete expired sessions before the purge sees them (what W006 says)."""
    if each_store.label != "mongodb":
        yield each_store
        return
    from tests.mongo_fixtures import mongo_sessionkit

    with mongo_sessionkit(request.getfixturevalue("mongo_server"), AUTO_REMOVE="disabled") as s:
        yield s


def visit() -> str:
    browser = Client()
    browser.get("/count/")
    return key_of(browser)


def after_expiry() -> None:
    time.sleep(SOON.total_seconds() + 0.15)


def test_each_expired_session_is_reported_once_by_the_purge(
    store: Store, ended: list[dict[str, Any]], user: Any
) -> None:
    anonymous = [visit() for _ in range(3)]
    alice = key_of(signed_in("alice"))
    live = visit()
    for key in [*anonymous, alice]:
        rewrite(store, key, expires_at=utcnow() + SOON)
    after_expiry()
    # Listing and counting meanwhile (the admin, the user page) do not swallow an event.
    listed = {key for key, _ in store.list(limit=50)}
    assert live in listed and alice not in listed
    assert store.count() == 1
    ended.clear()

    out = run("purgesessions")

    assert "Purged 4 expired sessions" in out, out
    by_key = {e["key_hash"]: e for e in ended}
    assert sorted(by_key) == sorted([*anonymous, alice]) and len(ended) == 4
    assert {e["reason"] for e in ended} == {"expired"}
    assert by_key[alice]["user_id"] == str(user.pk)
    assert all(by_key[key]["user_id"] is None for key in anonymous)
    assert all(e["by"] is None and e["request"] is None for e in ended)
    ended.clear()
    run("purgesessions")
    assert ended == []  # reported once: the next purge has nothing to say
    assert store.load(live) is not None


def test_the_purge_names_idle_and_absolute_timeouts(
    store: Store, ended: list[dict[str, Any]]
) -> None:
    with lifetimes(IDLE_TIMEOUT=HOUR, ABSOLUTE_TIMEOUT=DAY):
        idle, absolute, plain = visit(), visit(), visit()
        now = utcnow()
        rewrite(store, idle, last_seen=now - timedelta(seconds=HOUR) + SOON,
                expires_at=now + SOON)  # fmt: skip
        rewrite(store, absolute, created_at=now - timedelta(seconds=DAY) + SOON,
                last_seen=now, expires_at=now + SOON)  # fmt: skip
        rewrite(store, plain, last_seen=now, expires_at=now + SOON)
        after_expiry()
        ended.clear()
        SessionStore.clear_expired()  # what Django's clearsessions calls
        reasons = {e["key_hash"]: e["reason"] for e in ended}
    assert reasons == {idle: "idle_timeout", absolute: "absolute_timeout", plain: "expired"}


def test_the_record_comes_along_where_the_store_still_had_it(
    store: Store, ended: list[dict[str, Any]], user: Any
) -> None:
    alice = key_of(signed_in("alice"))
    rewrite(store, alice, expires_at=utcnow() + SOON)
    after_expiry()
    ended.clear()
    run("purgesessions")
    (event,) = ended
    record = event["record"]
    if store.label == "redis":  # Redis dropped it: what its index kept is reported
        assert record is None
    else:
        assert isinstance(record, SessionRecord) and record.user_id == str(user.pk)


def expiring(store: Store, count: int) -> list[str]:
    """``count`` sessions saved straight into the store, expiring in a moment."""
    now = utcnow()
    keys = [f"{n:064x}" for n in range(1, count + 1)]
    for n, key in enumerate(keys):
        user_id = str(n % 3) if n % 2 else None
        record = SessionRecord({"n": n}, now + SOON, now, now, user_id=user_id)
        store.save(key, record, must_create=True)
    return keys


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_purges_running_at_once_report_each_session_once(
    store_alias: str,  # noqa: F811  (the fixture imported above)
    ended: list[dict[str, Any]],
    request: pytest.FixtureRequest,
) -> None:
    if store_alias == "mongo":
        from tests.mongo_fixtures import mongo_sessionkit

        server = request.getfixturevalue("mongo_server")
        with mongo_sessionkit(server, AUTO_REMOVE="disabled"):
            purge_at_once(ended)
    else:
        purge_at_once(ended)


def purge_at_once(ended: list[dict[str, Any]]) -> None:
    store = get_store()
    keys = expiring(store, 60)
    after_expiry()
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def purge() -> None:
        try:
            start.wait()
            for _batch in lifecycle.purge(get_store(), batch_size=7):
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=purge) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counted = Counter(e["key_hash"] for e in ended)
    assert set(counted) == set(keys)
    assert set(counted.values()) == {1}, [k for k, n in counted.items() if n > 1]


def test_no_receiver_no_report(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a receiver the store takes its cheaper purge, asked for no report."""
    asked: list[Any] = []
    purge_expired = store.purge_expired

    def spy(batch_size: int = 1000, **kwargs: Any) -> Iterator[int]:
        asked.append(kwargs.get("report"))
        return purge_expired(batch_size, **kwargs)

    monkeypatch.setattr(store, "purge_expired", spy)
    key = visit()
    rewrite(store, key, expires_at=utcnow() + SOON)
    after_expiry()
    assert "Purged 1 expired sessions" in run("purgesessions")
    assert asked == [None]


def test_a_store_that_cannot_report_expiry_says_so_in_a_check(
    ended: list[dict[str, Any]], redis_standalone: Any
) -> None:
    from tests.redis_fixtures import sessionkit_on

    with sessionkit_on(redis_standalone):
        assert not [m for m in checks.run_checks() if m.id == "sessionkit.W006"]
    express = {
        "COMPAT": "express",
        "STORE": {
            "BACKEND": "django_sessionkit.stores.express.ExpressRedisStore",
            "LOCATION": redis_standalone.url,
        },
    }
    with override_settings(SESSIONKIT=express):
        (warning,) = [m for m in checks.run_checks() if m.id == "sessionkit.W006"]
    assert "connect-redis's layout keeps no index" in warning.msg


def test_mongo_native_ttl_is_named_by_the_check(
    ended: list[dict[str, Any]], mongo_server: Any
) -> None:
    from tests.mongo_fixtures import mongo_sessionkit

    with mongo_sessionkit(mongo_server, AUTO_REMOVE="native"):
        (warning,) = [m for m in checks.run_checks() if m.id == "sessionkit.W006"]
    assert "AUTO_REMOVE is 'native'" in warning.msg
    with mongo_sessionkit(mongo_server, AUTO_REMOVE="interval"):
        assert not [m for m in checks.run_checks() if m.id == "sessionkit.W006"]


def test_express_mongo_reports_expiry_with_the_user(
    ended: list[dict[str, Any]], mongo_server: Any
) -> None:
    from tests.mongo_fixtures import mongo_sessionkit

    backend = "django_sessionkit.stores.mongo.ExpressMongoStore"
    express = {"COMPAT": "express"}
    with mongo_sessionkit(mongo_server, backend, express, AUTO_REMOVE="interval") as store:
        now = utcnow()
        signed = SessionRecord({"_auth_user_id": "7"}, now + SOON, now, now, user_id="7")
        store.save("a" * 32, signed, must_create=True)
        store.save("b" * 32, SessionRecord({}, now + SOON, now, now), must_create=True)
        store.save(
            "c" * 32, SessionRecord({}, now + timedelta(hours=1), now, now), must_create=True
        )
        after_expiry()
        removed = sum(lifecycle.purge(store))
    assert removed == 2
    assert sorted((e["key_hash"], e["user_id"], e["reason"]) for e in ended) == [
        ("a" * 32, "7", "expired"),
        ("b" * 32, None, "expired"),
    ]
