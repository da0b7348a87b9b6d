from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.factories import UserFactory
from tests.services import service_missing

pytest_plugins = ["tests.redis_fixtures"]

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
