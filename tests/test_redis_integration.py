"""The whole stack on RedisStore: requests through the middleware, sync and ASGI, per-request
round trips against the budgets, and a Redis stopped between requests (503, then intact)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, override_settings

from django_sessionkit.stores import get_store
from django_sessionkit.stores.redis import RedisStore
from django_sessionkit.stores.redis import connection as redis_client
from django_sessionkit.stores.redis.scripts import INDEX, SAVE, TOUCH
from tests.redis_fixtures import delete_prefix, new_prefix, store_config
from tests.redis_servers import Cluster, Standalone

pytestmark = pytest.mark.django_db


def round_trips(monkeypatch: pytest.MonkeyPatch, request: Any) -> int:
    """Round trips a request made to the store: writes on one socket, on the busiest node.

    A Cluster pipeline writes once to each node it involves, all in parallel: that is one
    round trip however many nodes (and scripts) it reaches.
    """
    sends: Counter[int] = Counter()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(conn: Any, command: Any, check_health: bool = True) -> None:
        sends[int(getattr(conn, "port", 0))] += 1
        original(conn, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
        request()
    return max(sends.values(), default=0)


def test_requests_keep_their_session_in_redis(redis_settings: Standalone) -> None:
    client = Client()
    assert client.get("/count/").json() == {"views": 1}
    assert client.get("/count/").json() == {"views": 2}
    assert get_store().count() == 1


@pytest.fixture
def cluster_settings(redis_cluster: Cluster) -> Iterator[Cluster]:
    location, options = store_config(redis_cluster)
    prefix = new_prefix()
    store = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": location,
        "OPTIONS": {**options, "PREFIX": prefix},
    }
    with override_settings(SESSIONKIT={"STORE": store}):
        yield redis_cluster
        get_store().close()
    delete_prefix(redis_cluster, prefix)


@pytest.mark.parametrize("setup_fixture", ["redis_settings", "cluster_settings"])
def test_round_trips_per_request_meet_the_budget(
    setup_fixture: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    request.getfixturevalue(setup_fixture)
    store = get_store()
    assert isinstance(store, RedisStore)
    # Every script on every node first: a node's first EVALSHA would otherwise cost a
    # NOSCRIPT and a SCRIPT LOAD once, wherever a new session's key happens to land.
    for script in (SAVE, TOUCH, INDEX):
        redis_client.sync_client(store.config).script_load(script.text)
    client = Client()
    for _ in range(5):  # connect to every node
        Client().get("/count/")
    client.get("/count/")
    assert round_trips(monkeypatch, lambda: client.get("/plain/")) == 0
    assert round_trips(monkeypatch, lambda: client.get("/read/")) == 1
    assert round_trips(monkeypatch, lambda: client.get("/count/")) == 2
    assert round_trips(monkeypatch, lambda: Client().get("/count/")) == 1


def test_a_stopped_redis_answers_503_then_every_session_is_back(
    redis_settings: Standalone, caplog: pytest.LogCaptureFixture
) -> None:
    clients = [Client() for _ in range(3)]
    for client in clients:
        client.get("/count/")
    redis_settings.server.stop()
    with caplog.at_level(logging.ERROR, logger="django_sessionkit"):
        response = clients[0].get("/count/")
    assert response.status_code == 503
    assert response["Retry-After"]
    redis_settings.server.start()
    for client in clients:
        assert client.get("/count/").json() == {"views": 2}


def test_asgi_requests_use_the_async_store(redis_settings: Standalone) -> None:
    async def scenario() -> list[Any]:
        client = AsyncClient()
        first = (await client.get("/async/count/")).json()
        second = (await client.get("/async/count/")).json()
        return [first, second]

    assert async_to_sync(scenario)() == [{"views": 1}, {"views": 2}]
    assert get_store().count() == 1


def test_asgi_request_with_redis_stopped_gets_503(redis_settings: Standalone) -> None:
    async def request() -> tuple[int, int]:
        client = AsyncClient()
        await client.get("/async/count/")
        redis_settings.server.stop()
        down = (await client.get("/async/count/")).status_code
        redis_settings.server.start()
        again = (await client.get("/async/count/")).json()["views"]
        return down, again

    assert async_to_sync(request)() == (503, 2)
