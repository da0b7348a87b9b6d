"""The audit trail (SESSIONKIT["KEEP_ENDED"]): how sessions start, the ended sessions kept
with how, when and by whom, on the pages, in ``listsessions --ended``, and purged after
KEEP_ENDED. Off by default, with nothing connected and nothing written.

On SQLite, PostgreSQL and MariaDB (rows in the database store's own database) and on a
Redis store (rows in "default").
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils.crypto import get_random_string

from django_sessionkit import audit, cookies, signals
from django_sessionkit.checks import check_settings
from django_sessionkit.engine import IMPORTED_KEY, store_key
from django_sessionkit.models import EndedSession
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import SessionRecord, Store, utcnow
from tests.command_helpers import run
from tests.test_admin import FIREFOX, IPHONE, browser, key_of, user
from tests.test_lifetimes import lifetimes, rewrite

pytestmark = pytest.mark.django_db

DAY = 86400
LIST = "/admin/django_sessionkit/session/"
PAGE = "/account/sessions/"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.django_db(databases=["default", "pg"])),
        pytest.param("mysql", marks=pytest.mark.django_db(databases=["default", "mysql"])),
        "redis",
        "redis-cluster",
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The audit on (KEEP_ENDED a day) over the database store on SQLite, PostgreSQL and
    MariaDB, and over a Redis store, standalone and on a Cluster."""
    if request.param.startswith("redis"):
        from tests.redis_fixtures import sessionkit_on

        setup = "redis_standalone" if request.param == "redis" else "redis_cluster"
        with sessionkit_on(request.getfixturevalue(setup)), lifetimes(KEEP_ENDED=DAY):
            yield get_store()
        return
    if request.param == "sqlite":
        with lifetimes(KEEP_ENDED=DAY):
            yield get_store()
        return
    alias = request.getfixturevalue("pg_alias" if request.param == "postgresql" else "mysql_alias")
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": alias}, "KEEP_ENDED": DAY}):
        yield get_store()


def old_user(username: str) -> Any:
    """A user whose account is two days old (a login is no signup)."""
    found = user(username)
    get_user_model().objects.filter(pk=found.pk).update(date_joined=utcnow() - timedelta(days=2))
    found.refresh_from_db()
    return found


def ended() -> list[EndedSession]:
    return list(audit.rows().order_by("ended_at", "id"))


def started_of(store: Store, client: Client) -> str:
    record = store.load(key_of(client))
    assert record is not None
    return audit.started(record)


# --- off by default -------------------------------------------------------------------


def test_off_by_default_nothing_is_connected_marked_or_written(
    each_store: Store, admin_client: Client, django_assert_num_queries: Any
) -> None:
    assert not signals.session_ended.has_listeners()
    assert not any("audit" in str(r) for r in user_logged_in.receivers)
    old_user("alice")
    laptop, phone = browser("alice"), browser("alice")
    record = each_store.load(key_of(laptop))
    assert record is not None and audit.STARTED_KEY not in record.data
    laptop.get("/logout/")
    admin_client.post(
        LIST + "revoke/", {"action": "user", "user": record.user_id, "confirm": "yes"}
    )
    assert each_store.load(key_of(phone)) is None  # ended, by the single store call
    assert EndedSession.objects.count() == 0
    assert not EndedSession.objects.using(audit.alias()).exists()
    with django_assert_num_queries(0):
        assert audit.purge() == 0
    page = phone.get(PAGE)
    assert page.status_code == 302  # signed out; and a signed-in page shows no audit column
    assert "Started" not in browser("alice").get(PAGE).content.decode()


def test_on_and_off_follows_the_setting() -> None:
    with lifetimes(KEEP_ENDED=60):
        assert signals.session_ended.has_listeners()
        assert any(r[0][0] == "django_sessionkit.audit" for r in user_logged_in.receivers)
    assert not signals.session_ended.has_listeners()
    assert not any(r[0][0] == "django_sessionkit.audit" for r in user_logged_in.receivers)


@pytest.mark.parametrize("value", [-1, 1.5, "3600", True, "1h"])
def test_a_wrong_keep_ended_is_a_system_check_error(value: Any) -> None:
    with override_settings(SESSIONKIT={"KEEP_ENDED": value}):
        errors = [m for m in check_settings() if m.id == "sessionkit.E032"]
        assert not audit.is_on()
    assert len(errors) == 1
    assert f"SESSIONKIT['KEEP_ENDED'] is {value!r}" in errors[0].msg
    assert "whole number of seconds >= 0" in errors[0].msg


@pytest.mark.parametrize("value", [0, 1, DAY, None])
def test_a_right_keep_ended_passes_the_checks(value: Any) -> None:
    with override_settings(SESSIONKIT={"KEEP_ENDED": value}):
        assert not [m for m in check_settings() if m.id == "sessionkit.E032"]


# --- how sessions start ---------------------------------------------------------------


def test_login_signup_and_anonymous_visit(store: Store) -> None:
    old_user("alice")
    assert started_of(store, browser("alice")) == "login"
    user("newcomer")  # created just now: the login that follows is a signup
    assert started_of(store, browser("newcomer")) == "signup"
    assert started_of(store, browser()) == "visit"


def test_signup_is_an_account_created_during_the_session_that_signs_in(store: Store) -> None:
    joined = utcnow() - timedelta(hours=1)  # past SIGNUP_WINDOW
    for name in ("early", "late"):
        user(name)
        get_user_model().objects.filter(username=name).update(date_joined=joined)
    # a visit that began before the account was created, then signed in: a signup
    early = browser()
    rewrite(store, key_of(early), created_at=joined - timedelta(minutes=30))
    early.get("/login/early/")
    assert started_of(store, early) == "signup"
    # a visit that began after the account was created: a login
    assert started_of(store, browser("late")) == "login"


def test_signup_survives_an_absolute_timeout_restarting_the_clock(store: Store) -> None:
    joined = utcnow() - timedelta(hours=1)
    user("carol")
    get_user_model().objects.filter(username="carol").update(date_joined=joined)
    raw = {**dict(get_store_settings()), "ABSOLUTE_TIMEOUT": 3 * DAY}
    with override_settings(SESSIONKIT=raw):
        visit = browser()
        rewrite(store, key_of(visit), created_at=joined - timedelta(minutes=5))
        visit.get("/login/carol/")  # the login restarts created_at for ABSOLUTE_TIMEOUT
        record = store.load(key_of(visit))
        assert record is not None and record.created_at > joined
        assert audit.started(record) == "signup"


def get_store_settings() -> dict[str, Any]:
    from django_sessionkit.conf import sessionkit_settings

    return dict(sessionkit_settings.raw)


def test_signing_in_again_to_the_same_user_keeps_the_mark(store: Store) -> None:
    user("dave")  # just created: a signup
    laptop = browser("dave")
    assert started_of(store, laptop) == "signup"
    get_user_model().objects.filter(username="dave").update(
        date_joined=utcnow() - timedelta(days=3)
    )
    laptop.get("/login/dave/")  # signs in again in the same session
    assert started_of(store, laptop) == "signup"
    old_user("erin")
    laptop.get("/login/erin/")  # another user: a new session, a login
    assert started_of(store, laptop) == "login"
    assert [(e.reason, e.started) for e in ended()] == [("logout", "signup")]


def test_an_imported_session_is_marked_when_it_moves_to_our_id(store: Store) -> None:
    alice = old_user("alice")
    old_id = get_random_string(32, VALID_KEY_CHARS)
    now = utcnow()
    data = {
        "_auth_user_id": str(alice.pk),
        "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
        "_auth_user_hash": alice.get_session_auth_hash(),
        IMPORTED_KEY: True,
    }
    record = SessionRecord(data, now + timedelta(days=1), now, now, user_id=str(alice.pk))
    store.save(store_key(old_id), record, must_create=True)  # as importsessions writes it
    assert audit.started(record) == "imported"  # not back yet
    client = Client()
    client.cookies["sessionid"] = old_id
    assert client.get("/whoami/").json() == {"user": "alice"}
    moved = store.load(key_of(client))
    assert moved is not None and IMPORTED_KEY not in moved.data
    assert moved.data[audit.STARTED_KEY] == "imported"
    client.get("/logout/")
    assert [(e.reason, e.started) for e in ended()] == [("logout", "imported")]


@pytest.mark.django_db(transaction=True)
async def test_a_login_under_asgi_is_marked() -> None:
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    with lifetimes(KEEP_ENDED=DAY):
        await sync_to_async(old_user)("alice")
        client = AsyncClient()
        await client.get("/async/login/alice/")
        record = await get_store().aload(key_of(client))  # type: ignore[arg-type]
        assert record is not None and record.data[audit.STARTED_KEY] == "login"


# --- how sessions end ---------------------------------------------------------------------


def test_a_logout_keeps_the_session_with_its_metadata(store: Store) -> None:
    old_user("alice")
    phone = browser("alice", ip="10.5.5.5", ua=IPHONE)
    key = key_of(phone)
    record = store.load(key)
    assert record is not None
    phone.get("/logout/")
    (row,) = ended()
    assert (row.key, row.user_id, row.reason, row.by) == (key, record.user_id, "logout", "")
    assert (row.started, row.ip, row.user_agent) == ("login", "10.5.5.5", IPHONE)
    assert row.created_at == record.created_at
    assert utcnow() - row.ended_at < timedelta(minutes=1)
    assert row.how_ended == "signed out" and row.how_started == "signed in"


def test_revocations_password_changes_limits_and_timeouts_are_kept(
    store: Store, admin_client: Client
) -> None:
    old_user("alice")
    phone, laptop, tablet = browser("alice"), browser("alice"), browser("alice", ua=IPHONE)
    admin_client.post(
        LIST + "revoke/", {"action": "selected", "session": key_of(phone)[:12], "confirm": "yes"}
    )
    laptop.post(PAGE + "end/", {"session": key_of(tablet)[:12]})
    watch = browser("alice")
    laptop.get("/password/alice/")  # ends every other session of alice: watch
    run("revokesessions", "--user", "alice", "--no-input")  # ends laptop
    assert [(e.key, e.reason, e.by) for e in ended()] == [
        (key_of(phone), "revoked", "admin"),
        (key_of(tablet), "revoked", "user"),
        (key_of(watch), "password_changed", "user"),
        (key_of(laptop), "revoked", "command"),
    ]
    assert {e.started for e in ended()} == {"login"}
    audit.rows().delete()
    raw = {**get_store_settings(), "MAX_SESSIONS_PER_USER": 1, "IDLE_TIMEOUT": 3600}
    with override_settings(SESSIONKIT=raw):
        first = browser("alice")
        second = browser("alice")  # past the limit: the first ends
        assert [(e.key, e.reason, e.by) for e in ended()] == [(key_of(first), "revoked", "limit")]
        audit.rows().delete()
        rewrite(store, key_of(second), last_seen=utcnow() - timedelta(hours=2))
        gone = key_of(second)
        second.get("/count/")
        assert [(e.key, e.reason, e.by, e.started) for e in ended()] == [
            (gone, "idle_timeout", "", "login")
        ]


def test_a_session_the_purge_finds_expired_is_kept_with_how_it_started(store: Store) -> None:
    old_user("alice")
    phone = browser("alice", ip="10.5.5.5", ua=IPHONE)
    key = key_of(phone)
    rewrite(store, key, expires_at=utcnow() + timedelta(milliseconds=200))
    time.sleep(0.35)
    assert "Purged 1 expired sessions" in run("purgesessions")
    (row,) = ended()
    assert (row.key, row.reason, row.by, row.user_id) == (
        key,
        "expired",
        "",
        str(old_user("alice").pk),
    )
    if store.label != "redis":  # the record is still there to read; Redis dropped it
        assert (row.started, row.ip, row.user_agent) == ("login", "10.5.5.5", IPHONE)
    run("purgesessions")
    assert len(ended()) == 1  # reported once


def test_an_event_without_its_record_is_kept_too(store: Store) -> None:
    """A purge of a store whose records expired by themselves knows only the key and user."""
    from django_sessionkit.lifecycle import ended_event

    signals.send([ended_event("ab" * 32, "7", "expired")])
    (row,) = ended()
    assert (row.key, row.user_id, row.reason, row.started, row.created_at) == (
        "ab" * 32,
        "7",
        "expired",
        "",
        None,
    )
    assert row.how_started == "not recorded" and row.how_ended == "expired"


def test_the_rows_live_in_the_database_stores_own_database(store: Store) -> None:
    from django_sessionkit.stores.database import DatabaseStore

    expected = store.alias if isinstance(store, DatabaseStore) else "default"
    assert audit.alias() == expected
    old_user("alice")
    browser("alice").get("/logout/")
    assert EndedSession.objects.using(expected).count() == 1
    if expected != "default":
        assert EndedSession.objects.using("default").count() == 0


def test_express_compat_keeps_the_hash_of_the_id_not_the_id() -> None:
    with override_settings(SESSIONKIT={"KEEP_ENDED": DAY, "COMPAT": "express"}):
        from django_sessionkit.lifecycle import ended_event

        signals.send([ended_event("raw-express-session-id", None, "logout")])
        (row,) = ended()
    assert row.key == cookies.hash_id("raw-express-session-id")
    assert "raw-express" not in row.key


# --- the pages ----------------------------------------------------------------------------


def test_the_admin_shows_how_a_live_session_started_and_an_ended_one(
    store: Store, admin_client: Client
) -> None:
    alice = old_user("alice")
    laptop, phone = browser("alice"), browser("alice", ip="10.5.5.5", ua=IPHONE)
    ref = key_of(phone)[:12]
    admin_client.post(LIST + "revoke/", {"action": "selected", "session": ref, "confirm": "yes"})
    live = admin_client.get(f"{LIST}{key_of(laptop)[:12]}/?u={alice.pk}")
    page = live.content.decode()
    assert live.status_code == 200
    assert '<td class="sessionkit-started">Signed in</td>' in page
    assert "Recently ended sessions of this user" in page and f"{LIST}{ref}/" in page
    gone = admin_client.get(f"{LIST}{ref}/")
    assert gone.status_code == 200 and gone.context["ended"].ref == ref
    page = gone.content.decode()
    assert "This session has ended" in page
    assert '<td class="sessionkit-how-ended">Ended by an administrator</td>' in page
    assert "<code>revoked</code>, by <code>admin</code>" in page
    assert "10.5.5.5" in page and "iPhone" in page and ">alice</a>" in page
    assert admin_client.get(f"{LIST}{'0' * 12}/").status_code == 404


def test_an_ended_session_page_is_404_while_the_audit_is_off(
    each_store: Store, admin_client: Client
) -> None:
    row = EndedSession.objects.using(audit.alias()).create(
        key="cd" * 32, ended_at=utcnow(), reason="logout"
    )
    assert admin_client.get(f"{LIST}{row.ref}/").status_code == 404


def test_the_user_page_shows_how_each_started_and_the_recently_ended(store: Store) -> None:
    old_user("alice")
    user("bob")
    laptop, phone = browser("alice"), browser("alice", ip="10.5.5.5", ua=IPHONE)
    bob = browser("bob", ip="10.7.7.7")
    laptop.post(PAGE + "end/", {"session": key_of(phone)[:12]})
    bob.get("/logout/")
    response = laptop.get(PAGE)
    assert [row.started for row in response.context["sessions"]] == ["signed in"]
    assert [(e.ref, e.reason, e.by) for e in response.context["ended"]] == [
        (key_of(phone)[:12], "revoked", "user")
    ]
    page = response.content.decode()
    assert '<td class="sessionkit-started">Signed in' in page
    assert "Recently ended" in page and "Signed out from another session" in page
    assert "10.5.5.5" in page and "iPhone" in page
    assert "10.7.7.7" not in page  # bob's ended session is bob's


# --- listsessions --ended -----------------------------------------------------------------


def test_listsessions_ended_lists_them_newest_first(store: Store) -> None:
    old_user("alice")
    user("bob")
    phone = browser("alice", ip="10.5.5.5", ua=IPHONE)
    laptop = browser("alice", ip="192.0.2.7", ua=FIREFOX)
    bob = browser("bob", ip="10.7.7.7")
    refs = {name: key_of(client)[:12] for name, client in [("phone", phone), ("bob", bob)]}
    phone.get("/logout/")
    run("revokesessions", "--user", "alice", "--no-input")
    bob.get("/logout/")
    table = run("listsessions", "--ended").splitlines()
    assert table[0].split() == [
        "KEY", "USER", "IP", "USER", "AGENT", "STARTED", "CREATED", "ENDED", "REASON", "BY"
    ]  # fmt: skip
    assert table[-1] == "(3 sessions)"
    assert [line.split()[0] for line in table[1:-1]] == [
        refs["bob"],
        key_of(laptop)[:12],
        refs["phone"],
    ]
    assert "revoked" in table[2] and "command" in table[2] and "alice" in table[2]
    assert "signup" in table[1] and "logout" in table[3] and "login" in table[3]
    rows = json.loads(run("listsessions", "--ended", "--format", "json", "--user", "alice"))
    assert [(r["key"], r["reason"], r["by"], r["ip"]) for r in rows] == [
        (key_of(laptop)[:12], "revoked", "command", "192.0.2.7"),
        (refs["phone"], "logout", None, "10.5.5.5"),
    ]
    assert rows[1]["user_agent"] == IPHONE and rows[1]["started"] == "login"
    csv = run("listsessions", "--ended", "--format", "csv", "--ip", "10.0.0.0/8").splitlines()
    assert csv[0] == "key,user,ip,user_agent,started,created,ended,reason,by"
    assert [line.split(",")[0] for line in csv[1:]] == [refs["bob"], refs["phone"]]
    paged = json.loads(run("listsessions", "--ended", "--format", "json", "--page-size", "1"))
    assert [r["key"] for r in paged] == [r.split()[0] for r in table[1:-1]]
    later = (utcnow() + timedelta(minutes=1)).isoformat()
    assert run("listsessions", "--ended", "--active-since", later).splitlines() == [
        table[0],
        "(0 sessions)",
    ]
    hour = run("listsessions", "--ended", "--format", "json", "--active-since", "1h")
    assert len(json.loads(hour)) == 3


def test_listsessions_ended_takes_a_deleted_users_id(store: Store) -> None:
    gone = old_user("gone")
    browser("gone").get("/logout/")
    user_id = str(gone.pk)
    gone.delete()
    rows = json.loads(run("listsessions", "--ended", "--format", "json", "--user", user_id))
    assert [(r["user"], r["user_id"]) for r in rows] == [(f"#{user_id}", user_id)]
    with pytest.raises(CommandError, match="no user has that username or id"):
        run("listsessions", "--ended", "--user", "nobody")


def test_listsessions_ended_refuses_bad_input(each_store: Store) -> None:
    with pytest.raises(CommandError, match=r"KEEP_ENDED'\] is 0, so ended sessions are not kept"):
        run("listsessions", "--ended")
    with lifetimes(KEEP_ENDED=DAY):
        with pytest.raises(CommandError, match="--ip 'nowhere' is not an IP address"):
            run("listsessions", "--ended", "--ip", "nowhere")
        with pytest.raises(CommandError, match="--active-since 'yesterday' is not understood"):
            run("listsessions", "--ended", "--active-since", "yesterday")
        with pytest.raises(CommandError, match="--format 'xml' is not accepted"):
            run("listsessions", "--ended", "--format", "xml")


def test_an_ipv6_network_sqlite_cannot_search_says_so() -> None:
    with lifetimes(KEEP_ENDED=DAY), pytest.raises(CommandError, match="cannot be searched"):
        run("listsessions", "--ended", "--ip", "2001:db8::/33")


# --- the purge ------------------------------------------------------------------------------


def test_the_purge_removes_rows_kept_past_keep_ended(store: Store) -> None:
    now = utcnow()
    for hours in (1, 20, 23, 25, 100):
        audit.rows().create(
            key=f"{hours:064x}", ended_at=now - timedelta(hours=hours), reason="logout"
        )
    out = io.StringIO()
    call_command("purgesessions", stdout=out)
    assert sorted(int(e.key, 16) for e in ended()) == [1, 20, 23]
    # a day and a half hour later, one row at a time: 20 and 23 are past the day
    assert audit.purge(batch_size=1, now=now + timedelta(hours=22, minutes=30)) == 2
    assert [int(e.key, 16) for e in ended()] == [1]
