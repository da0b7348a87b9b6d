from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.factories import UserFactory
from tests.services import service_missing

pytest_plugins = ["tests.redis_fixtures"]


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


@pytest.fixture
def mysql_alias() -> Iterator[str]:
    """The MariaDB/MySQL alias, or a skip (fail under CI) saying how to start MariaDB."""
    if "mysql" not in settings.DATABASES:
        service_missing(
            "MariaDB on 127.0.0.1:3306 (user root, empty password, database 'test') "
            "with mysqlclient installed in .venv",
            "Start it with: start-stop-daemon --start --oknodo --background --exec "
            "/usr/sbin/mariadbd; bash tests/run installs mysqlclient "
            "(pip install -e '.[mysql]' needs default-libmysqlclient-dev and pkg-config)",
        )
    yield "mysql"
