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


#: The server behind each optional database alias (tests/settings.py adds an alias only when
#: its server answers): what is missing, and how to start it.
DATABASE_SERVICES = {
    "pg": (
        "PostgreSQL on 127.0.0.1:5432 (trust auth, database 'test')",
        "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "mysql": (
        "MariaDB (or MySQL) on 127.0.0.1:3306 (user root, empty password, database 'test')",
        "Start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    ),
}
MYSQL_DRIVER_MISSING = (
    "mysqlclient, Django's MySQL/MariaDB driver,",
    "Install it with: bash tests/run (it runs .venv/bin/pip install -e '.[mysql]', which "
    "builds against Debian's default-libmysqlclient-dev and pkg-config)",
)


def database_alias(alias: str) -> str:
    """``alias``, or a skip (fail under CI) saying how to start its server."""
    if alias not in settings.DATABASES:
        if alias == "mysql" and not settings.MYSQL_DRIVER:
            service_missing(*MYSQL_DRIVER_MISSING)
        service_missing(*DATABASE_SERVICES[alias])
    return alias


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked for a database whose server is not there skips (fails under CI) with
    the how-to, before pytest-django refuses the unknown alias with ImproperlyConfigured."""
    marker = item.get_closest_marker("django_db")
    databases = marker.kwargs.get("databases", ()) if marker else ()
    if isinstance(databases, (list, tuple)):
        for alias in databases:
            if alias in DATABASE_SERVICES:
                database_alias(alias)


@pytest.fixture
def pg_alias() -> Iterator[str]:
    """The PostgreSQL alias, or a skip (fail under CI) saying how to start PostgreSQL."""
    yield database_alias("pg")


@pytest.fixture
def mysql_alias() -> Iterator[str]:
    """The MariaDB/MySQL alias, or a skip (fail under CI) saying how to start MariaDB."""
    yield database_alias("mysql")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.django_db(databases=["default", "pg"])),
        pytest.param("mysql", marks=pytest.mark.django_db(databases=["default", "mysql"])),
        "redis",
        "redis-cluster",
        "mongo",
    ]
)
def each_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The configured store: DatabaseStore on SQLite, PostgreSQL and MariaDB, then RedisStore
    on our own redis-server and on our own 3-master Redis Cluster, then MongoStore on our own
    nx-27017 (tests/mongo_fixtures.py)."""
    if request.param == "sqlite":
        yield get_store()
        return
    if request.param in ("postgresql", "mysql"):
        alias = request.getfixturevalue(
            "pg_alias" if request.param == "postgresql" else "mysql_alias"
        )
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
