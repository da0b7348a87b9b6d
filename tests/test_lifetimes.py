"""Idle and absolute timeouts, the anonymous lifetime and TOUCH_AFTER, on every store.

Times are moved by rewriting a stored record (its last activity or start in the past)
rather than by sleeping: what is tested is the engine's reading of the record it loaded
(no extra round trip) and the expiry it gives the stores.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.test import Client, override_settings

from django_sessionkit import cookies
from django_sessionkit.stores.base import SessionRecord, Store, utcnow
from tests.test_budgets import session_queries

pytestmark = pytest.mark.django_db

HOUR = 3600


def key_of(browser: Client) -> str:
    sid = cookies.cookie_to_id(unquote(browser.cookies["sessionid"].value))
    assert sid
    return cookies.hash_id(sid)


def rewrite(store: Store, key: str, **changes: Any) -> SessionRecord:
    """Put the stored record's times back (a save with the same data and new times)."""
    record = store.load(key)
    assert record is not None
    store.delete(key)
    moved = dataclasses.replace(record, version=0, **changes)
    store.save(key, moved, must_create=True)
    return moved


def expires_in(store: Store, key: str) -> float:
    record = store.load(key)
    assert record is not None
    return (record.expires_at - utcnow()).total_seconds()


def lifetimes(**values: Any) -> Any:
    return override_settings(SESSIONKIT={**_store_settings(), **values})


def _store_settings() -> dict[str, Any]:
    from django_sessionkit.conf import sessionkit_settings

    store = sessionkit_settings.raw.get("STORE")
    return {} if store is None else {"STORE": store}


def test_an_idle_session_ends_and_is_deleted(each_store: Store) -> None:
    with lifetimes(IDLE_TIMEOUT=HOUR):
        browser = Client()
        browser.get("/count/")
        key = key_of(browser)
        assert expires_in(each_store, key) <= HOUR + 1  # the store drops it by itself too
        rewrite(each_store, key, last_seen=utcnow() - timedelta(hours=2))
        assert browser.get("/count/").json() == {"views": 1}  # a new session
        assert each_store.load(key) is None  # and the idle one is gone


def test_activity_keeps_an_idle_timeout_sliding(each_store: Store) -> None:
    with lifetimes(IDLE_TIMEOUT=HOUR, TOUCH_AFTER=0):
        browser = Client()
        browser.get("/count/")
        key = key_of(browser)
        rewrite(each_store, key, last_seen=utcnow() - timedelta(minutes=50))
        assert browser.get("/read/").json()["data"] == {"views": 1}  # read: touched
        record = each_store.load(key)
        assert record is not None and utcnow() - record.last_seen < timedelta(minutes=1)
        assert expires_in(each_store, key) > 59 * 60


def test_an_absolute_timeout_ends_even_an_active_session(each_store: Store) -> None:
    with lifetimes(ABSOLUTE_TIMEOUT=HOUR, ROLLING=True):
        browser = Client()
        browser.get("/count/")
        key = key_of(browser)
        rewrite(each_store, key, created_at=utcnow() - timedelta(hours=2))
        assert browser.get("/count/").json() == {"views": 1}
        assert each_store.load(key) is None


def test_set_expiry_stays_within_the_absolute_limit(each_store: Store) -> None:
    with lifetimes(ABSOLUTE_TIMEOUT=HOUR):
        browser = Client()
        browser.get(f"/expiry/{10 * 24 * HOUR}/")  # "remember me" for ten days
        assert expires_in(each_store, key_of(browser)) <= HOUR + 1


def test_login_starts_the_absolute_clock_again(each_store: Store, user: Any) -> None:
    with lifetimes(ABSOLUTE_TIMEOUT=HOUR):
        browser = Client()
        browser.get("/count/")
        rewrite(each_store, key_of(browser), created_at=utcnow() - timedelta(minutes=50))
        browser.get("/login/alice/")
        record = each_store.load(key_of(browser))
        assert record is not None and utcnow() - record.created_at < timedelta(minutes=1)
        assert expires_in(each_store, key_of(browser)) > 59 * 60


def test_anonymous_sessions_get_their_own_shorter_lifetime(each_store: Store, user: Any) -> None:
    with lifetimes(ANONYMOUS_MAX_AGE=600):
        browser = Client()
        response = browser.get("/count/")
        assert expires_in(each_store, key_of(browser)) <= 601
        assert "Max-Age=600" in response.cookies["sessionid"].output()
        browser.get("/login/alice/")
        assert expires_in(each_store, key_of(browser)) > 13 * 24 * HOUR  # two weeks again


def test_touch_after_spares_the_touch_of_a_recently_seen_rolling_session() -> None:
    with lifetimes(ROLLING=True, TOUCH_AFTER=60):
        browser = Client()
        browser.get("/count/")
        with session_queries() as queries:
            response = browser.get("/read/")
        assert len(queries) == 1 and queries[0].startswith("SELECT")  # no touch: 1 query
        assert "sessionid" in response.cookies  # the cookie is still rolled
    with lifetimes(ROLLING=True, TOUCH_AFTER=0):
        with session_queries() as queries:
            browser.get("/read/")
        assert [q.split()[0] for q in queries] == ["SELECT", "UPDATE"]  # express: every time


def test_a_session_over_touch_after_is_touched() -> None:
    from django_sessionkit.stores import get_store

    with lifetimes(ROLLING=True, TOUCH_AFTER=60):
        browser = Client()
        browser.get("/count/")
        rewrite(get_store(), key_of(browser), last_seen=utcnow() - timedelta(minutes=2))
        with session_queries() as queries:
            browser.get("/read/")
        assert [q.split()[0] for q in queries] == ["SELECT", "UPDATE"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"IDLE_TIMEOUT": 0}, "IDLE_TIMEOUT"),
        ({"ABSOLUTE_TIMEOUT": "1h"}, "ABSOLUTE_TIMEOUT"),
        ({"ANONYMOUS_MAX_AGE": -1}, "ANONYMOUS_MAX_AGE"),
        ({"TOUCH_AFTER": 1.5}, "TOUCH_AFTER"),
        ({"END_SESSIONS_ON_PASSWORD_CHANGE": "yes"}, "END_SESSIONS_ON_PASSWORD_CHANGE"),
    ],
)
def test_wrong_lifetimes_fail_the_checks(values: dict[str, Any], message: str) -> None:
    from django_sessionkit.checks import sessionkit_checks

    with override_settings(SESSIONKIT=values):
        errors = [e for e in sessionkit_checks() if e.id == "sessionkit.E031"]
    assert errors and message in errors[0].msg


def test_a_touch_after_as_long_as_the_idle_timeout_is_a_warning() -> None:
    from django_sessionkit.checks import sessionkit_checks

    with override_settings(SESSIONKIT={"IDLE_TIMEOUT": 60, "TOUCH_AFTER": 60}):
        assert "sessionkit.W004" in {e.id for e in sessionkit_checks()}


def signed_in(username: str) -> Client:
    browser = Client()
    browser.get(f"/login/{username}/")
    return browser


def test_a_password_change_ends_the_users_other_sessions_at_once(
    each_store: Store, user: Any, other_user: Any
) -> None:
    laptop, phone, bob = signed_in("alice"), signed_in("alice"), signed_in("bob")
    alice_id = str(user.pk)
    assert len(each_store.list(user_id=alice_id)) == 2
    assert laptop.get("/password/alice/").content == b"changed"
    left = [key for key, _ in each_store.list(user_id=alice_id)]
    assert left == [key_of(laptop)]  # ended in the store, not only at its next request
    assert laptop.get("/whoami/").json() == {"user": "alice"}  # this browser stays signed in
    assert phone.get("/whoami/").json() == {"user": None}
    assert bob.get("/whoami/").json() == {"user": "bob"}


def test_without_end_sessions_on_password_change_django_s_rule_applies(
    each_store: Store, user: Any
) -> None:
    with lifetimes(END_SESSIONS_ON_PASSWORD_CHANGE=False):
        laptop, phone = signed_in("alice"), signed_in("alice")
        laptop.get("/password/alice/")
        assert len(each_store.list(user_id=str(user.pk))) == 2  # still listed
        assert phone.get("/whoami/").json() == {"user": None}  # its hash check fails


def test_a_login_past_the_limit_ends_the_least_recently_seen_session(
    each_store: Store, user: Any
) -> None:
    with lifetimes(MAX_SESSIONS_PER_USER=2):
        first, second = signed_in("alice"), signed_in("alice")
        second.get("/count/")  # seen after the first
        rewrite(each_store, key_of(first), last_seen=utcnow() - timedelta(minutes=5))
        third = signed_in("alice")
        left = {key for key, _ in each_store.list(user_id=str(user.pk))}
        assert left == {key_of(second), key_of(third)}
        assert first.get("/whoami/").json() == {"user": None}
        assert third.get("/whoami/").json() == {"user": "alice"}


def test_a_wrong_session_limit_fails_the_checks() -> None:
    from django_sessionkit.checks import sessionkit_checks

    for wrong in (0, -1, "3", 2.5):
        with override_settings(SESSIONKIT={"MAX_SESSIONS_PER_USER": wrong}):
            errors = [e for e in sessionkit_checks() if e.id == "sessionkit.E031"]
        assert errors and "MAX_SESSIONS_PER_USER" in errors[0].msg, wrong
