"""Queries per request on the database store (DESIGN.md's budgets)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db

TABLE = "django_sessionkit_session"


@contextmanager
def session_queries() -> Iterator[list[str]]:
    found: list[str] = []
    with CaptureQueriesContext(connection) as ctx:
        yield found
    found.extend(q["sql"] for q in ctx.captured_queries if TABLE in q["sql"])


def test_untouched_session_costs_nothing(client: Client) -> None:
    client.get("/count/")
    with session_queries() as queries:
        client.get("/plain/")
    assert queries == []


def test_read_costs_one_query(client: Client) -> None:
    client.get("/count/")
    with session_queries() as queries:
        client.get("/read/")
    assert len(queries) == 1 and queries[0].startswith("SELECT")


def test_read_and_modify_costs_two(client: Client) -> None:
    client.get("/count/")
    with session_queries() as queries:
        client.get("/count/")
    assert [q.split()[0] for q in queries] == ["SELECT", "UPDATE"]


def test_new_session_costs_one_insert(client: Client) -> None:
    with session_queries() as queries:
        client.get("/count/")
    assert [q.split()[0] for q in queries] == ["INSERT"]


@override_settings(SESSIONKIT={"RESAVE": False, "ROLLING": True})
def test_unmodified_rolling_read_is_one_update_without_the_data(client: Client) -> None:
    client.get("/count/")
    with session_queries() as queries:
        client.get("/read/")
    assert [q.split()[0] for q in queries] == ["SELECT", "UPDATE"]
    assert '"data"' not in queries[1]


@pytest.mark.django_db(transaction=True)
def test_login_costs_at_most_three(
    client: Client, user: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.get("/count/")
    # BEGIN and COMMIT are round trips too, but CaptureQueriesContext does not list them:
    # count the transactions Django opens (autocommit switched off) as well.
    opened: list[bool] = []
    original = connection.set_autocommit

    def spy(autocommit: bool, **kwargs: object) -> None:
        if not autocommit:
            opened.append(True)
        original(autocommit, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(connection, "set_autocommit", spy)
    with session_queries() as queries:
        client.get("/login/alice/")
    assert [q.split()[0] for q in queries] == ["SELECT", "DELETE", "INSERT"]
    assert opened == []
