"""The store contract on DatabaseStore, over SQLite, PostgreSQL and MariaDB (or MySQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections

from django_sessionkit.models import Session
from django_sessionkit.stores.database import DatabaseStore
from tests.store_contract import StoreContract, make_record, new_key


@pytest.mark.django_db
class TestDatabaseStoreOnSQLite(StoreContract):
    @pytest.fixture
    def store(self) -> DatabaseStore:
        return DatabaseStore("default")

    def test_corrupt_row_loads_as_missing_and_is_logged(
        self, store: DatabaseStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        key = new_key()
        store.save(key, make_record(), must_create=True)
        Session.objects.filter(key=key).update(data="{not json")
        assert store.load(key) is None
        assert "unreadable" in caplog.text


@pytest.mark.django_db(databases=["default", "pg"])
class TestDatabaseStoreOnPostgreSQL(StoreContract):
    @pytest.fixture
    def store(self, pg_alias: str) -> Iterator[DatabaseStore]:
        assert connections[pg_alias].vendor == "postgresql"
        yield DatabaseStore(pg_alias)


@pytest.mark.django_db(databases=["default", "mysql"])
class TestDatabaseStoreOnMySQL(StoreContract):
    @pytest.fixture
    def store(self, mysql_alias: str) -> Iterator[DatabaseStore]:
        assert connections[mysql_alias].vendor == "mysql"
        yield DatabaseStore(mysql_alias)


def test_check_rejects_unknown_alias_and_options() -> None:
    problems = DatabaseStore.check("nope", {"X": 1})
    assert any("'nope' is not a database alias" in p for p in problems)
    assert any("OPTIONS ['X'] are not accepted: DatabaseStore takes" in p for p in problems)
    assert DatabaseStore.check(None, {}) == []
    timeouts = {"LOCK_TIMEOUT": 0.2, "STATEMENT_TIMEOUT": 0, "BREAKER_COOL_DOWN": 1}
    assert DatabaseStore.check(None, timeouts) == []
    bad = DatabaseStore.check(None, {"LOCK_TIMEOUT": -1, "BREAKER_FAILURES": 0})
    assert any("'LOCK_TIMEOUT'] is -1" in p and "seconds >= 0" in p for p in bad)
    assert any("'BREAKER_FAILURES'] is 0" in p and "int >= 1" in p for p in bad)
