"""The whole stack on RedisStore: requests through the middleware, sync and ASGI, per-request
round trips against the budgets, and a Redis stopped between requests (503, then intact)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, override_settings

from django_sessionkit.stores import get_store
from tests.redis_fixtures import delete_prefix, new_prefix, store_config
from tests.redis_servers import Cluster, Standalone

pytestmark = pytest.mark.django_db

# Commands the measuring connections themselves send.
NOT_OURS = ("cmdstat_info", "cmdstat_hello", "cmdstat_client|setinfo")


def top_level_calls(setup: Standalone | Cluster) -> Counter[str]:
    total: Counter[str] = Counter()
    for conn in setup.clients():
        with conn:
            for name, stats in conn.info("commandstats").items():
                if name not in NOT_OURS:
                    total[name.removeprefix("cmdstat_")] += int(stats["calls"])
    return total


def store_commands(setup: Standalone | Cluster, request: Any) -> int:
    """Top-level commands a request sent (the calls a script makes itself not counted)."""
    before = top_level_calls(setup)
    request()
    after = top_level_calls(setup)
    after.subtract(before)
    script_inner = ("exists", "hget", "hset", "hdel", "hkeys", "pexpireat", "zadd", "sadd")
    if after["evalsha"]:
        for name in script_inner:
            after.pop(name, None)
    return sum(n for n in after.values() if n > 0)


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
    setup_fixture: str, request: pytest.FixtureRequest
) -> None:
    setup = request.getfixturevalue(setup_fixture)
    client = Client()
    for _ in range(5):  # connect to every node, load the scripts
        Client().get("/count/")
    client.get("/count/")
    assert store_commands(setup, lambda: client.get("/plain/")) == 0
    assert store_commands(setup, lambda: client.get("/read/")) == 1
    assert store_commands(setup, lambda: client.get("/count/")) == 2
    assert store_commands(setup, lambda: Client().get("/count/")) == 1


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
