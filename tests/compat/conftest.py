"""Fixtures of the compatibility module: each flow runs once per store.

``store`` is the session store of the test: the database store on PostgreSQL
(``database``) or the Redis store on a redis-server the tests start themselves
(``redis``). Users and the apps' own tables are on PostgreSQL in both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store
from tests.services import service_missing

pytest_plugins = ["tests.redis_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def _postgres() -> None:
    """Skip (fail under CI=true) before any database is set up when PostgreSQL is missing."""
    require_postgres()


def require_postgres() -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        service_missing(
            "PostgreSQL on 127.0.0.1:5432 (trust auth, database 'test')",
            "Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        )


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, db: None) -> Iterator[Store]:
    if request.param == "database":
        config = {"BACKEND": "django_sessionkit.stores.database.DatabaseStore"}
        with override_settings(SESSIONKIT={"STORE": {**config, "LOCATION": "default"}}):
            yield get_store()
    else:
        from tests.redis_fixtures import sessionkit_on  # a plugin: imported once pytest has it

        with sessionkit_on(request.getfixturevalue("redis_standalone")) as redis_store:
            yield redis_store


@pytest.fixture
def browser(store: Store) -> Client:
    """A test client on the store of this test (one browser)."""
    return Client()
