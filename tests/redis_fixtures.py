"""Pytest fixtures for RedisStore: our own servers (once per test session) and fresh stores.

Enable with ``pytest_plugins = ["tests.redis_fixtures"]`` in ``tests/conftest.py``.
Each store gets a prefix of its own; after the test every key under that prefix
is deleted (on our own servers only — never on the machine's Redis on 6379).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings

from django_sessionkit.stores import get_store
from django_sessionkit.stores.redis import RedisStore
from tests.redis_servers import Cluster, SentinelSetup, ServerError, Servers, Standalone, binary
from tests.services import service_missing

HOW = {
    "redis": "Install it with: apt-get install -y redis-server (or run `bash tests/run` as root; "
    "nothing needs to be running: the tests start their own servers on spare ports).",
    "valkey": (
        "Install it from bookworm-backports (`bash tests/run` as root does it; the steps are "
        "in docs/stores-redis.md): apt-get install -y -t bookworm-backports valkey-server "
        "valkey-tools."
    ),
}

#: Short timeouts so that a stopped server fails a test in well under a second.
FAST_FAILURE = {"SOCKET_TIMEOUT": 2.0, "SOCKET_CONNECT_TIMEOUT": 1.0, "RETRY_ATTEMPTS": 1}


def _require(flavour: str, *tools: str) -> None:
    for tool in (f"{flavour}-server", *tools):
        if binary(tool) is None:
            how = (
                "Install it with: apt-get install -y openssl."
                if tool == "openssl"
                else HOW[flavour]
            )
            service_missing(f"{tool} (needed by the {flavour} store tests)", how)


def _start(what: str, start: Callable[[], Any]) -> Any:
    try:
        return start()
    except (ServerError, OSError) as exc:
        service_missing(what, f"It failed to start: {exc}")


@pytest.fixture(scope="session")
def redis_servers() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def redis_standalone(redis_servers: Servers) -> Standalone:
    _require("redis")
    return _start("redis-server (standalone)", lambda: redis_servers.standalone("redis"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def redis_persistent(redis_servers: Servers) -> Standalone:
    """A standalone server with an append-only file: the stop/restart tests use this one."""
    _require("redis")
    return _start(  # type: ignore[no-any-return]
        "redis-server (appendonly)",
        lambda: redis_servers.standalone("redis", preferred=(7213, 7214), persistent=True),
    )


@pytest.fixture(scope="session")
def redis_tls(redis_servers: Servers) -> Standalone:
    """A TLS-only redis-server with a throwaway CA (``server.directory / "ca.pem"``)."""
    _require("redis", "openssl")
    return _start("redis-server with TLS", redis_servers.tls_standalone)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def redis_cluster(redis_servers: Servers) -> Cluster:
    _require("redis", "redis-cli")
    return _start("a 3-master Redis Cluster", lambda: redis_servers.cluster("redis"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def redis_sentinel(redis_servers: Servers) -> SentinelSetup:
    _require("redis")
    return _start("Redis Sentinel", lambda: redis_servers.sentinel("redis"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def valkey_standalone(redis_servers: Servers) -> Standalone:
    _require("valkey")
    return _start(  # type: ignore[no-any-return]
        "valkey-server",
        lambda: redis_servers.standalone("valkey", preferred=(7200, 7201)),
    )


@pytest.fixture(scope="session")
def valkey_cluster(redis_servers: Servers) -> Cluster:
    _require("valkey", "valkey-cli")
    return _start(  # type: ignore[no-any-return]
        "a 3-master Valkey Cluster",
        lambda: redis_servers.cluster("valkey", preferred=(7020, 7021, 7022)),
    )


def store_config(setup: Standalone | Cluster | SentinelSetup) -> tuple[Any, dict[str, Any]]:
    """LOCATION and OPTIONS reaching ``setup`` (without PREFIX)."""
    if isinstance(setup, Cluster):
        return setup.nodes, {"MODE": "cluster"}
    if isinstance(setup, SentinelSetup):
        return None, {"SENTINELS": setup.sentinels, "SERVICE_NAME": setup.service_name}
    return setup.url, {}


def new_prefix() -> str:
    return f"sk-test-{uuid.uuid4().hex[:12]}:"


def make_store(setup: Standalone | Cluster | SentinelSetup, **options: Any) -> RedisStore:
    location, base = store_config(setup)
    return RedisStore(location, {**base, "PREFIX": new_prefix(), **options})


def delete_prefix(setup: Standalone | Cluster | SentinelSetup, prefix: str) -> None:
    """Delete every key under ``prefix`` on our own servers (each master)."""
    for conn in setup.clients():
        with conn:
            try:
                if conn.info("replication").get("role") != "master":
                    continue
                keys = list(conn.scan_iter(match=prefix + "*", count=1000))
                if keys:
                    for key in keys:
                        conn.delete(key)
            except (redis.RedisError, OSError):  # a stopped server has nothing to clean
                continue


def _store(setup: Standalone | Cluster | SentinelSetup, **options: Any) -> Iterator[RedisStore]:
    store = make_store(setup, **options)
    yield store
    store.close()
    delete_prefix(setup, store.prefix)


@pytest.fixture
def redis_store(redis_standalone: Standalone) -> Iterator[RedisStore]:
    yield from _store(redis_standalone)


@pytest.fixture
def cluster_store(redis_cluster: Cluster) -> Iterator[RedisStore]:
    yield from _store(redis_cluster)


@pytest.fixture
def cluster_store_one_shard(redis_cluster: Cluster) -> Iterator[RedisStore]:
    """A Cluster store with the single index of earlier releases (INDEX_SHARDS = 1)."""
    yield from _store(redis_cluster, INDEX_SHARDS=1)


@pytest.fixture
def sentinel_store(redis_sentinel: SentinelSetup) -> Iterator[RedisStore]:
    yield from _store(redis_sentinel)


@pytest.fixture
def valkey_store(valkey_standalone: Standalone) -> Iterator[RedisStore]:
    yield from _store(valkey_standalone)


@pytest.fixture
def valkey_cluster_store(valkey_cluster: Cluster) -> Iterator[RedisStore]:
    yield from _store(valkey_cluster)


@contextlib.contextmanager
def sessionkit_on(
    setup: Standalone | Cluster | SentinelSetup, **options: Any
) -> Iterator[RedisStore]:
    """SESSIONKIT on a RedisStore over ``setup`` with a prefix of its own, removed afterwards."""
    location, base = store_config(setup)
    prefix = new_prefix()
    store = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": location,
        "OPTIONS": {**base, **options, "PREFIX": prefix},
    }
    try:
        with override_settings(SESSIONKIT={"STORE": store}):
            built = get_store()
            assert isinstance(built, RedisStore)
            yield built
            built.close()
    finally:
        server = getattr(setup, "server", None)
        if server is not None and server.process is None:
            server.start()
        delete_prefix(setup, prefix)


@pytest.fixture
def redis_settings(redis_persistent: Standalone) -> Iterator[Standalone]:
    """SESSIONKIT on a RedisStore over a server that keeps its data across a restart."""
    with sessionkit_on(redis_persistent, **FAST_FAILURE):
        yield redis_persistent
