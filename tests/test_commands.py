"""purgesessions, clearsessions, listsessions, revokesessions and sessionstats,
on DatabaseStore over SQLite, PostgreSQL and MariaDB (or MySQL)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.utils import timezone

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.management.base import hide_password
from django_sessionkit.management.lookup import find_by_prefix, handle_of
from django_sessionkit.management.purge import count_expired, purge
from django_sessionkit.management.stats import collect
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store
from django_sessionkit.stores.database import DatabaseStore
from tests.command_helpers import TTY, ThroughInterface, add, run
from tests.factories import UserFactory
from tests.mongo_fixtures import mongo_sessionkit


def user_named(username: str) -> Any:
    return UserFactory(username=username)


pytestmark = pytest.mark.django_db


@pytest.fixture(
    params=[
        "default",
        pytest.param("pg", marks=pytest.mark.django_db(databases=["default", "pg"])),
        pytest.param("mysql", marks=pytest.mark.django_db(databases=["default", "mysql"])),
        "mongo",
    ],
    ids=["sqlite", "postgresql", "mysql", "mongo"],
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The configured store, on SQLite, PostgreSQL and MariaDB (or MySQL), and MongoStore on
    our own nx-27017."""
    if request.param == "default":
        yield get_store()
        return
    if request.param == "mongo":
        # nx-27017 runs its TTL purge inline, at every command: expired sessions would be
        # gone before the purge under test ran. (MongoDB's TTL monitor runs once a minute.)
        server = request.getfixturevalue("mongo_server")
        with mongo_sessionkit(server, AUTO_REMOVE="disabled") as configured:
            yield configured
        return
    alias = request.getfixturevalue(f"{request.param}_alias")
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": alias}}):
        store = get_store()
        assert isinstance(store, DatabaseStore) and store.alias == alias
        yield store


def sid_of(client: Client) -> str:
    sid = cookies.unsign(unquote(client.cookies["sessionid"].value), sessionkit_settings.SECRETS)
    assert sid
    return sid


# --- purgesessions ------------------------------------------------------------


def test_purge_removes_only_expired_sessions_and_prints_one_line(store: Store) -> None:
    expired = [add(store, expires_in=-timedelta(minutes=1)) for _ in range(7)]
    live = [add(store) for _ in range(3)]
    out = run("purgesessions", "--batch-size", "3")
    assert out.count("\n") == 1
    assert "Purged 7 expired sessions" in out and "in 3 batches" in out
    assert all(store.load(k) is not None for k in live)
    assert count_expired(store) == 0
    assert not any(store.exists(k) for k in expired)


def test_purge_dry_run_only_counts(store: Store) -> None:
    for _ in range(4):
        add(store, expires_in=-timedelta(seconds=5))
    add(store)
    out = run("purgesessions", "--dry-run")
    assert "4 expired sessions would be removed" in out
    assert count_expired(store) == 4


def test_purge_on_a_terminal_shows_progress(store: Store) -> None:
    for _ in range(5):
        add(store, expires_in=-timedelta(seconds=5))
    out = run("purgesessions", "--batch-size", "2", stdout=TTY())
    assert "\rPurging: 2 of 5 removed" in out
    assert "Purged 5 expired sessions" in out


def test_purge_stops_cleanly_at_max_seconds(store: Store) -> None:
    for _ in range(6):
        add(store, expires_in=-timedelta(seconds=5))
    ticks = itertools.count(step=10)  # every look at the clock: 10 s later
    result = purge(store, batch_size=2, max_seconds=15, clock=lambda: float(next(ticks)))
    assert (result.removed, result.batches, result.stopped_early) == (2, 1, True)
    assert count_expired(store) == 4


def test_purge_sleeps_between_full_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    naps: list[float] = []
    monkeypatch.setattr("django_sessionkit.management.purge.time.sleep", naps.append)
    for _ in range(5):
        add(expires_in=-timedelta(seconds=5))
    run("purgesessions", "--batch-size", "2", "--sleep", "0.25")
    assert naps == [0.25, 0.25]


@pytest.mark.parametrize("value", ["0", "-5", "abc", "100001", "2.5"])
def test_purge_rejects_a_bad_batch_size(value: str) -> None:
    expired = add(expires_in=-timedelta(seconds=5))
    with pytest.raises(CommandError, match=r"--batch-size .* whole number from 1 to 100,000"):
        run("purgesessions", "--batch-size", value)
    assert count_expired(get_store()) == 1 and expired


def test_purge_rejects_a_bad_sleep_or_time_budget() -> None:
    with pytest.raises(CommandError, match=r"--sleep '-1'.*seconds, zero or more"):
        run("purgesessions", "--sleep", "-1")
    with pytest.raises(CommandError, match=r"--max-seconds '0'.*more than zero"):
        run("purgesessions", "--max-seconds", "0")


def test_clearsessions_goes_through_the_batched_purge(store: Store) -> None:
    expired = add(store, expires_in=-timedelta(seconds=5))
    live = add(store)
    assert run("clearsessions") == ""  # quiet in cron, like Django's
    assert store.load(live) is not None and not store.exists(expired)
    assert count_expired(store) == 0
    add(store, expires_in=-timedelta(seconds=5))
    assert "Purged 1 expired sessions" in run("clearsessions", verbosity=2)
    assert count_expired(store) == 0


def test_count_expired_is_unknown_through_the_interface_alone() -> None:
    assert count_expired(ThroughInterface(get_store())) is None
    out = run("purgesessions", "--dry-run")
    assert "0 expired sessions would be removed" in out


# --- listsessions -------------------------------------------------------------


def test_list_shows_prefix_user_ip_agent_and_times_never_the_id(store: Store) -> None:
    alice = user_named("alice")
    long_agent = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
    key = add(store, user_id=str(alice.pk), ip="203.0.113.9", user_agent=long_agent)
    add(store, ip="198.51.100.1")
    out = run("listsessions")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["KEY", "USER", "IP"]
    row = next(line for line in lines if "alice" in line)
    assert row.startswith(handle_of(key)) and key not in out
    assert "203.0.113.9" in row and "Mozilla/5.0 (X11; Linux x86_64; rv:140.…" in row
    assert lines[-1] == "(2 sessions)"


def test_list_filters_by_user_ip_and_activity(store: Store) -> None:
    alice, bob = user_named("alice"), user_named("bob")
    now = timezone.now()
    mine = add(store, user_id=str(alice.pk), ip="10.1.2.3", last_seen=now)
    old = add(store, user_id=str(alice.pk), ip="10.1.2.4", last_seen=now - timedelta(hours=3))
    theirs = add(store, user_id=str(bob.pk), ip="192.0.2.1", last_seen=now)

    def keys(*args: str) -> set[str]:
        rows = json.loads(run("listsessions", "--format", "json", *args))
        return {row["key"] for row in rows}

    assert keys("--user", "alice") == {handle_of(mine), handle_of(old)}
    assert keys("--user", str(bob.pk)) == {handle_of(theirs)}
    assert keys("--ip", "10.0.0.0/8") == {handle_of(mine), handle_of(old)}
    assert keys("--ip", "192.0.2.1") == {handle_of(theirs)}
    assert keys("--active-since", "1h") == {handle_of(mine), handle_of(theirs)}
    assert keys("--user", "alice", "--active-since", "90m") == {handle_of(mine)}


def test_list_as_json_and_csv(store: Store) -> None:
    alice = user_named("alice")
    key = add(store, user_id=str(alice.pk), user_agent="curl/8.5")
    row = json.loads(run("listsessions", "--format", "json"))[0]
    assert row["key"] == handle_of(key) and row["user"] == "alice"
    assert row["user_id"] == str(alice.pk) and row["user_agent"] == "curl/8.5"
    assert row["expires"].startswith(str(timezone.now().year))
    rows = list(csv.DictReader(io.StringIO(run("listsessions", "--format", "CSV"))))
    assert rows[0]["key"] == handle_of(key) and rows[0]["ip"] == "192.0.2.1"
    assert json.loads(run("listsessions", "--format", "json", "--ip", "::1")) == []


def test_list_pages_through_the_store(store: Store) -> None:
    for _ in range(7):
        add(store)
    out = run("listsessions", "--page-size", "3", "--format", "csv")
    assert len(out.splitlines()) == 1 + 7


def test_list_rejects_a_bad_active_since_saying_what_is_accepted() -> None:
    with pytest.raises(CommandError) as caught:
        run("listsessions", "--active-since", "yesterday")
    message = str(caught.value)
    assert "'yesterday' is not understood" in message
    assert "30m, 1h, 2d, 1w" in message and "2026-11-01" in message


def test_list_rejects_an_impossible_date_and_a_bad_ip_or_format() -> None:
    with pytest.raises(CommandError, match="not understood"):
        run("listsessions", "--active-since", "2026-02-30")
    with pytest.raises(CommandError, match=r"--ip 'localhost' is not an IP address"):
        run("listsessions", "--ip", "localhost")
    with pytest.raises(CommandError, match=r"--format 'xml' .*table, json, csv"):
        run("listsessions", "--format", "xml")


def test_active_since_accepts_iso_dates() -> None:
    add(last_seen=timezone.now() - timedelta(days=400))
    add()
    day = (timezone.now() - timedelta(days=1)).date().isoformat()
    assert len(json.loads(run("listsessions", "--format", "json", "--active-since", day))) == 1


def test_an_unknown_user_is_a_command_error() -> None:
    user_named("alice")
    with pytest.raises(CommandError) as caught:
        run("listsessions", "--user", "mallory")
    assert "no user has that username or id" in str(caught.value)
    assert "Give a username or a user id" in str(caught.value)


def test_a_deleted_users_id_is_still_accepted_while_it_has_sessions() -> None:
    add(user_id="4242")
    rows = json.loads(run("listsessions", "--format", "json", "--user", "4242"))
    assert [row["user"] for row in rows] == ["#4242"]


def test_a_username_that_is_another_users_id_is_ambiguous() -> None:
    first = user_named("first")
    user_named(str(first.pk + 1000))  # ensure the id below is not first's
    second = user_named(str(first.pk))
    assert second.pk != first.pk
    with pytest.raises(CommandError, match="is ambiguous"):
        run("listsessions", "--user", str(first.pk))


# --- revokesessions -----------------------------------------------------------


def test_revoke_user_signs_the_browser_out(client: Client, user: object) -> None:
    client.get("/login/alice/")
    other_device = Client()
    other_device.get("/login/alice/")
    bystander = Client()
    bystander.get("/count/")
    assert client.get("/whoami/").json() == {"user": "alice"}
    out = run("revokesessions", "--user", "alice", "--no-input")
    assert "Ended 2 session(s) of user alice" in out
    assert client.get("/whoami/").json() == {"user": None}
    assert other_device.get("/whoami/").json() == {"user": None}
    assert bystander.get("/count/").json() == {"views": 2}


def test_revoke_one_session_by_key_prefix(client: Client, user: object) -> None:
    client.get("/login/alice/")
    other_device = Client()
    other_device.get("/login/alice/")
    prefix = cookies.hash_id(sid_of(client))[:10]
    out = run("revokesessions", "--session", prefix.upper(), "--no-input")
    assert f"Ended 1 session {prefix}" in out
    assert client.get("/whoami/").json() == {"user": None}
    assert other_device.get("/whoami/").json() == {"user": "alice"}


def test_revoke_on_postgresql(store: Store) -> None:
    keys = [add(store, user_id="7") for _ in range(3)]
    assert "Ended 3" in run("revokesessions", "--user", "7", "--no-input")
    assert not any(store.exists(k) for k in keys)


def test_a_prefix_matching_several_sessions_is_refused(store: Store) -> None:
    first = add(store, key="deadbeef" + "0" * 56)
    second = add(store, key="deadbeef" + "1" * 56)
    with pytest.raises(CommandError) as caught:
        run("revokesessions", "--session", "deadbeef", "--no-input")
    message = str(caught.value)
    assert "matches several sessions (deadbeef00000000, deadbeef11111111)" in message
    assert "nothing was ended" in message and "Give more characters" in message
    assert store.exists(first) and store.exists(second)
    run("revokesessions", "--session", "deadbeef1", "--no-input")
    assert store.exists(first) and not store.exists(second)


def test_a_prefix_matching_nothing_or_too_short_is_refused() -> None:
    with pytest.raises(CommandError, match="matches no live session"):
        run("revokesessions", "--session", "0123abcd", "--no-input")
    with pytest.raises(CommandError, match=r"8 to 64 hexadecimal characters"):
        run("revokesessions", "--session", "abc", "--no-input")
    with pytest.raises(CommandError, match=r"8 to 64 hexadecimal characters"):
        run("revokesessions", "--session", "not-hex-at-all", "--no-input")


def test_revoke_needs_exactly_one_target() -> None:
    with pytest.raises(CommandError, match="--user USERNAME_OR_ID, --session KEY_PREFIX or --all"):
        run("revokesessions", "--no-input")
    with pytest.raises(CommandError, match="not allowed with"):
        run("revokesessions", "--all", "--user", "alice", "--no-input")


def test_revoke_dry_run_and_all(store: Store) -> None:
    keys = [add(store) for _ in range(5)]
    assert "Dry run: 5 session(s)" in run("revokesessions", "--all", "--dry-run")
    assert all(store.exists(k) for k in keys)
    assert "Ended 5 session(s), every one" in run("revokesessions", "--all", "--no-input")
    assert store.count() == 0
    assert "No live sessions to end" in run("revokesessions", "--all", "--no-input")


def test_revoke_asks_first(monkeypatch: pytest.MonkeyPatch) -> None:
    key = add(user_id="5")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["no", "yes"])
    questions: list[str] = []

    def answer(question: str) -> str:
        questions.append(question)
        return next(answers)

    monkeypatch.setattr("builtins.input", answer)
    assert "Cancelled" in run("revokesessions", "--user", "5")
    assert get_store().exists(key)
    assert "Ended 1" in run("revokesessions", "--user", "5")
    assert "End 1 session(s) of user deleted user id 5" in questions[0]
    assert not get_store().exists(key)


def test_revoke_without_a_terminal_needs_no_input(monkeypatch: pytest.MonkeyPatch) -> None:
    key = add(user_id="5")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(CommandError, match="Pass --no-input"):
        run("revokesessions", "--user", "5")
    assert get_store().exists(key)


# --- sessionstats -------------------------------------------------------------


def fill_for_stats(store: Store) -> tuple[Any, Any]:
    alice, bob = user_named("alice"), user_named("bob")
    for _ in range(3):
        add(store, user_id=str(alice.pk))
    add(store, user_id=str(bob.pk), expires_in=timedelta(minutes=30))
    add(store, expires_in=timedelta(hours=5))
    add(store, expires_in=timedelta(days=3))
    add(store, expires_in=-timedelta(minutes=1))  # expired: not counted
    return alice, bob


def test_stats(store: Store) -> None:
    alice, bob = fill_for_stats(store)
    out = run("sessionstats")
    assert "Live sessions:         6" in out
    assert "signed in:           4" in out and "anonymous:           2" in out
    assert "Expiring within 1 h:   1" in out and "Expiring within 1 day: 5" in out
    assert f"3  alice (id {alice.pk})" in out
    assert f"1  bob (id {bob.pk})" in out
    assert f"Store:                 {store.describe()} [{type(store).__name__}]" in out
    data = json.loads(run("sessionstats", "--format", "json", "--top", "1"))
    assert data["top_users"] == [{"user_id": str(alice.pk), "username": "alice", "sessions": 3}]


def test_stats_through_the_interface_alone_agree() -> None:
    fill_for_stats(get_store())
    assert collect(ThroughInterface(get_store())) == collect(get_store())


def test_stats_reject_bad_top_and_format() -> None:
    with pytest.raises(CommandError, match=r"--top 'many'.*1 to 100,000"):
        run("sessionstats", "--top", "many")
    with pytest.raises(CommandError, match=r"--format 'yaml'.*text, json"):
        run("sessionstats", "--format", "yaml")


def test_passwords_are_hidden_from_store_descriptions() -> None:
    assert hide_password("redis://user:hunter2@host:6379/0") == "redis://user:***@host:6379/0"
    assert hide_password("redis://:hunter2@host") == "redis://:***@host"
    assert hide_password("{'password': 'hunter2', 'db': 0}") == "{'password': '***', 'db': 0}"


# --- key prefixes through the Store interface only --------------------------


def test_find_by_prefix_without_the_database_fast_path() -> None:
    first = add(key="cafebabe" + "0" * 56)
    add(key="cafebabe" + "1" * 56)
    generic = ThroughInterface(get_store())
    assert len(find_by_prefix(generic, "cafebabe", limit=5)) == 2
    assert [k for k, _ in find_by_prefix(generic, "cafebabe0", limit=5)] == [first]
    assert find_by_prefix(generic, "cafebabe", limit=1)[0][0].startswith("cafebabe")
