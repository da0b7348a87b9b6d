from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store
from tests.factories import UserFactory
from tests.services import service_missing

pytest_plugins = ["tests.redis_fixtures", "tests.mongo_fixtures"]

# tests/compat runs in a pytest process of its own with its own settings (tests/run does
# it after this run; `pytest tests/compat` alone picks up tests/compat/pytest.ini).
collect_ignore = ["compat"]


@pytest.fixture
def user(db: None) -> object:
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db: None) -> object:
    return UserFactory(username="bob")


@pytest.fixture
def pg_alias() -> Iterator[str]:
    """The PostgreSQL alias, or a skip (fail under CI) saying how to start PostgreSQL."""
    if "pg" not in settings.DATABASES:
        service_missing(
            "PostgreSQL on 127.0.0.1:5432 (trust auth, database 'test')",
            "Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        )
    yield "pg"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.django_db(databases=["default", "pg"])),
        "redis",
        "redis-cluster",
        "mongo",
    ]
)
def each_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The configured store: DatabaseStore on SQLite and on PostgreSQL, then RedisStore on
    our own redis-server and on our own 3-master Redis Cluster, then MongoStore on our own
    nx-27017 (tests/mongo_fixtures.py)."""
    if request.param == "sqlite":
        yield get_store()
        return
    if request.param == "postgresql":
        alias = request.getfixturevalue("pg_alias")
        with override_settings(SESSIONKIT={"STORE": {"LOCATION": alias}}):
            yield get_store()
        return
    if request.param == "mongo":
        from tests.mongo_fixtures import mongo_sessionkit

        with mongo_sessionkit(request.getfixturevalue("mongo_server")) as configured:
            yield configured
        return
    from tests.redis_fixtures import sessionkit_on  # a plugin: imported once pytest has it

    setup = request.getfixturevalue(
        "redis_standalone" if request.param == "redis" else "redis_cluster"
    )
    with sessionkit_on(setup) as configured:
        yield configured
