"""``USE_TZ = False`` and ``True``, in UTC and in another time zone, on every store.

Records carry aware UTC times; the database store turns them into what Django keeps
under each setting (naive local times when ``USE_TZ = False``). A wrong conversion
shows up as a session that expires hours early or late, so the tests look at the
stored expiry and let a purge run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store, utcnow
from django_sessionkit.stores.database import DatabaseStore
from tests.command_helpers import run

pytestmark = pytest.mark.django_db

# New York is five hours from UTC and Kathmandu 5:45 from it: an offset applied twice,
# or not at all, moves an expiry by hours.
ZONES = [
    (False, "America/New_York"),
    (False, "Asia/Kathmandu"),
    (False, "UTC"),
    (True, "America/New_York"),
]


@pytest.fixture(params=ZONES, ids=lambda zone: f"USE_TZ={zone[0]}-{zone[1]}")
def zone(request: pytest.FixtureRequest) -> Iterator[tuple[bool, str]]:
    use_tz, name = request.param
    with override_settings(USE_TZ=use_tz, TIME_ZONE=name):
        yield use_tz, name


def stored_expiry_hours(store: Store) -> list[float]:
    now = utcnow()
    return sorted(
        round((record.expires_at - now).total_seconds() / 3600, 1)
        for _key, record in store.iter_all()
    )


def test_sessions_work_and_expire_when_they_should(
    each_store: Store, zone: tuple[bool, str], user: object
) -> None:
    browser = Client()
    assert [browser.get("/count/").json()["views"] for _ in range(3)] == [1, 2, 3]
    browser.get("/login/alice/")
    assert browser.get("/whoami/").json() == {"user": "alice"}
    short = Client()
    short.get("/count/")
    short.get("/expiry/3600/")  # one hour from now
    age_hours = sessionkit_settings.STORE_AGE / 3600
    assert stored_expiry_hours(each_store) == [1.0, age_hours]
    assert each_store.count() == 2
    for _batch in each_store.purge_expired():
        pass
    assert each_store.count() == 2  # neither has expired, in any time zone
    assert short.get("/count/").json()["views"] == 2
    assert browser.get("/whoami/").json() == {"user": "alice"}


@pytest.fixture(
    params=[
        "default",
        pytest.param("pg", marks=pytest.mark.django_db(databases=["default", "pg"])),
        pytest.param("mysql", marks=pytest.mark.django_db(databases=["default", "mysql"])),
    ]
)
def database_store(request: pytest.FixtureRequest) -> Iterator[DatabaseStore]:
    alias = request.param
    if alias != "default":
        alias = request.getfixturevalue(f"{alias}_alias")
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": alias}}):
        store = get_store()
        assert isinstance(store, DatabaseStore)
        yield store


def test_the_database_row_holds_what_django_would_hold(
    database_store: DatabaseStore, zone: tuple[bool, str]
) -> None:
    use_tz, _name = zone
    Client().get("/count/")
    connection = connections[database_store.alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # timestamptz: one instant, whatever the zone
            cursor.execute("SELECT EXTRACT(EPOCH FROM last_seen) FROM django_sessionkit_session")
            (epoch,) = cursor.fetchone()
            assert abs(float(epoch) - time.time()) < 60
            return
        cursor.execute("SELECT last_seen FROM django_sessionkit_session")
        (raw,) = cursor.fetchone()
    stored = parse_datetime(raw) if isinstance(raw, str) else raw
    assert stored is not None and timezone.is_naive(stored)
    # Django's own convention: UTC under USE_TZ = True, local time under False.
    expected = utcnow().replace(tzinfo=None) if use_tz else timezone.now()
    assert abs((stored - expected).total_seconds()) < 60


def test_admin_and_commands_under_the_zone(
    each_store: Store, zone: tuple[bool, str], admin_client: Client
) -> None:
    Client().get("/expiry/3600/")
    page = admin_client.get("/admin/django_sessionkit/session/")
    assert page.status_code == 200
    assert run("listsessions", "--format", "json").count('"key"') >= 1
    assert "1" in run("sessionstats")
    run("purgesessions")
    call_command("clearsessions")
    assert each_store.count() == 2  # nothing purged (the admin's and one ending in an hour)
    run("revokesessions", "--all", "--no-input")
    assert each_store.count() == 0
