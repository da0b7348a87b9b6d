"""Connection modes and pools of :class:`~django_sessionkit.stores.redis.RedisStore`.

``LOCATION`` and ``OPTIONS``, checked by :mod:`.options`, are turned into a
:class:`RedisConfig`, and that into a standalone, Sentinel or Cluster client. Clients are
shared per
process: one sync client per configuration, and one async client per
configuration *and event loop*, because a ``redis.asyncio`` client belongs to
the loop it first ran in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, ResponseError

from django_sessionkit.stores.redis.options import (
    DEFAULTS,
    MODES,
    OPTION_TYPES,
    SCHEMES,
    SSL_OPTIONS,
    describe,
    hide_password,
    infer_mode,
    locations,
    problems,
    sentinel_address,
    service_name,
    url_problem,
)

__all__ = [
    "DEFAULTS",
    "MODES",
    "OPTION_TYPES",
    "SCHEMES",
    "RedisConfig",
    "async_client",
    "describe",
    "forget",
    "hide_password",
    "infer_mode",
    "parse",
    "problems",
    "sync_client",
    "sync_lane",
    "url_problem",
]

# --- building clients ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RedisConfig:
    mode: str
    location: Any
    options: Mapping[str, Any]

    @property
    def prefix(self) -> str:
        return str(self.options.get("PREFIX", DEFAULTS["PREFIX"]))

    @functools.cached_property
    def cache_key(self) -> str:
        return repr((self.mode, self.location, sorted(self.options.items(), key=repr)))

    def option(self, name: str) -> Any:
        return self.options.get(name, DEFAULTS.get(name))

    def connection_kwargs(self, *, asyncio_client: bool) -> dict[str, Any]:
        """Keyword arguments every connection of this store gets (sync or async)."""
        backoff = ExponentialWithJitterBackoff(
            cap=float(self.option("RETRY_BACKOFF_CAP")),
            base=float(self.option("RETRY_BACKOFF_BASE")),
        )
        retry_class = redis.asyncio.retry.Retry if asyncio_client else redis.retry.Retry
        kwargs: dict[str, Any] = {
            "socket_timeout": float(self.option("SOCKET_TIMEOUT")),
            "socket_connect_timeout": float(self.option("SOCKET_CONNECT_TIMEOUT")),
            # Retried: a connection that turns out dead (a restarted server, a killed
            # client). Not retried: a timeout, where the server is alive but stalled and
            # another attempt would only wait as long again. Replays are harmless either
            # way: reads and touches are idempotent, and a save's token makes it so.
            "retry": retry_class(
                backoff, int(self.option("RETRY_ATTEMPTS")), supported_errors=(ConnectionError,)
            ),
            "decode_responses": True,
        }
        if "MAX_CONNECTIONS" in self.options:
            kwargs["max_connections"] = self.options["MAX_CONNECTIONS"]
        if "HEALTH_CHECK_INTERVAL" in self.options:
            kwargs["health_check_interval"] = self.options["HEALTH_CHECK_INTERVAL"]
        for name in SSL_OPTIONS:
            if name in self.options:
                value = self.options[name]
                kwargs[name.lower()] = value.lower() if name == "SSL_CERT_REQS" else value
        kwargs.update(self.options.get("CONNECTION_POOL_KWARGS") or {})
        return kwargs


def parse(location: Any, options: Mapping[str, Any]) -> RedisConfig:
    found = problems(location, options)
    if found:
        raise ValueError("Invalid RedisStore configuration: " + " ".join(found))
    return RedisConfig(infer_mode(location, options), location, dict(options))


def _url_credentials(url: str | None) -> dict[str, Any]:
    if not url:
        return {}
    parts = urlsplit(url)
    found: dict[str, Any] = {}
    if parts.username:
        found["username"] = unquote(parts.username)
    if parts.password:
        found["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        found["ssl"] = True
    return found


def _cluster_nodes(location: Any) -> list[tuple[str, int]]:
    nodes = []
    for entry in locations(location):
        url = entry if "://" in entry else f"redis://{entry}"
        parts = urlsplit(url)
        nodes.append((parts.hostname or "127.0.0.1", parts.port or 6379))
    return nodes


def _sentinel_kwargs(config: RedisConfig) -> dict[str, Any]:
    kwargs = {
        "socket_timeout": float(config.option("SOCKET_TIMEOUT")),
        "socket_connect_timeout": float(config.option("SOCKET_CONNECT_TIMEOUT")),
    }
    kwargs.update(config.options.get("SENTINEL_KWARGS") or {})
    return kwargs


def _master_kwargs(config: RedisConfig) -> dict[str, Any]:
    location = config.location if isinstance(config.location, str) else None
    kwargs = _url_credentials(location)
    if location:
        db = urlsplit(location).path.strip("/")
        if db:
            kwargs["db"] = int(db)
    return kwargs


def build_sync(config: RedisConfig) -> Any:
    kwargs = config.connection_kwargs(asyncio_client=False)
    if config.mode == "cluster":
        first = locations(config.location)[0]
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in _cluster_nodes(config.location)]
        kwargs.pop("health_check_interval", None)
        return redis.cluster.RedisCluster(
            startup_nodes=nodes, **_url_credentials(first if "://" in first else None), **kwargs
        )
    if config.mode == "sentinel":
        sentinels = [sentinel_address(e) for e in config.options["SENTINELS"]]
        sentinel = redis.sentinel.Sentinel(
            sentinels, sentinel_kwargs=_sentinel_kwargs(config), **kwargs
        )
        name = service_name(config.location, config.options) or ""
        return sentinel.master_for(name, **_master_kwargs(config))
    return redis.Redis.from_url(config.location, **kwargs)


def build_async(config: RedisConfig) -> Any:
    kwargs = config.connection_kwargs(asyncio_client=True)
    if config.mode == "cluster":
        first = locations(config.location)[0]
        nodes = [
            redis.asyncio.cluster.ClusterNode(h, p) for h, p in _cluster_nodes(config.location)
        ]
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, **_url_credentials(first if "://" in first else None), **kwargs
        )
    if config.mode == "sentinel":
        sentinels = [sentinel_address(e) for e in config.options["SENTINELS"]]
        sentinel = redis.asyncio.sentinel.Sentinel(
            sentinels, sentinel_kwargs=_sentinel_kwargs(config), **kwargs
        )
        name = service_name(config.location, config.options) or ""
        return sentinel.master_for(name, **_master_kwargs(config))
    return redis.asyncio.Redis.from_url(config.location, **kwargs)


# --- pools shared per process (sync) and per event loop (async) --------------

_lock = threading.Lock()
_sync_clients: dict[str, Any] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def sync_client(config: RedisConfig) -> Any:
    client = _sync_clients.get(config.cache_key)
    if client is None:
        with _lock:
            client = _sync_clients.get(config.cache_key)
            if client is None:
                client = _sync_clients[config.cache_key] = build_sync(config)
    return client


class Lane:
    """A standalone client's connections, used for the store's own round trips without
    redis-py's per-command machinery (pool checkout and release with their metrics, a
    readiness poll, the command wrappers): about a third of a round trip's CPU here.

    Each connection is taken from the client's pool once and kept on an idle stack. With
    ``MAX_CONNECTIONS`` set, connections go back to the pool after each round trip instead,
    so that the client's other uses (a ``SCAN``, a script load) can still have one; the
    limit bounds the whole either way. The rules stay the client's: the
    connection's own ``Retry`` retries a dropped connection (``ConnectionError``) with
    backoff and sends the round trip again, and nothing else; its socket timeouts,
    health checks and reply callbacks apply. After any error the connection is closed
    before it goes back, so an idle one never holds an unread reply.
    """

    def __init__(self, client: redis.Redis, config: RedisConfig) -> None:
        self.pool = client.connection_pool
        self.callbacks = client.response_callbacks
        self.idle: list[Any] = []
        pool_kwargs = config.options.get("CONNECTION_POOL_KWARGS") or {}
        #: Kept on the lane unless the connections were bounded in the settings.
        self.keep = "MAX_CONNECTIONS" not in config.options and "max_connections" not in pool_kwargs

    def run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One round trip: the commands pipelined, a reply (or ResponseError) each."""
        try:
            conn = self.idle.pop()
        except IndexError:
            conn = self.pool.get_connection()  # once per connection of this lane
        try:
            return conn.retry.call_with_retry(  # type: ignore[no-any-return]
                lambda: self._exchange(conn, commands), lambda _error: conn.disconnect()
            )
        except BaseException:
            conn.disconnect()
            raise
        finally:
            if self.keep:
                self.idle.append(conn)
            else:
                self.pool.release(conn)

    def _exchange(self, conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        if len(commands) == 1:
            packed = [_pack(commands[0])] if _pack is not None else conn.pack_command(*commands[0])
            conn.send_packed_command(packed)
        else:
            conn.send_packed_command(conn.pack_commands(commands))
        results: list[Any] = []
        callbacks = self.callbacks
        for args in commands:
            try:
                reply = conn.read_response()
            except ResponseError as exc:
                results.append(exc)
                continue
            callback = callbacks.get(args[0])
            results.append(reply if callback is None else callback(reply))
        return results

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.disconnect()


_lanes: dict[str, Lane | None] = {}

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # hiredis packs a command in C; redis-py's packer adds a Python layer over it
    from hiredis import pack_command as _hiredis_pack

    _pack = _hiredis_pack
except ImportError:  # pragma: no cover (hiredis is a dependency of the redis extra)
    _pack = None


def sync_lane(config: RedisConfig) -> Lane | None:
    """The :class:`Lane` of ``config``'s sync client; ``None`` for a Cluster or Sentinel
    (their clients route and fail over per command) or a client-side cache."""
    try:
        return _lanes[config.cache_key]
    except KeyError:
        pass
    client = sync_client(config)
    plain = type(client) is redis.Redis and type(client.connection_pool) is redis.ConnectionPool
    lane = Lane(client, config) if plain and client.connection_pool.cache is None else None
    with _lock:
        return _lanes.setdefault(config.cache_key, lane)


def _forget_lanes_in_child() -> None:
    # A forked worker must not share the parent's sockets; redis-py's pool makes new ones.
    _lanes.clear()


os.register_at_fork(after_in_child=_forget_lanes_in_child)


def async_client(config: RedisConfig) -> Any:
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        with _lock:
            # Clients of finished loops hold the loop alive: drop them.
            for old in [old for old in _async_clients if old.is_closed()]:
                del _async_clients[old]
            clients = _async_clients.setdefault(loop, {})
    client = clients.get(config.cache_key)
    if client is None:
        client = clients[config.cache_key] = build_async(config)
    return client


def forget(config: RedisConfig) -> list[Any]:
    """Drop the shared clients of ``config``; return the async ones (to close in their loop)."""
    with _lock:
        sync = _sync_clients.pop(config.cache_key, None)
        lane = _lanes.pop(config.cache_key, None)
        leftovers = [
            c.pop(config.cache_key) for c in _async_clients.values() if config.cache_key in c
        ]
    if lane is not None:
        lane.close()
    if sync is not None:
        sync.close()
    return leftovers


async def aforget(config: RedisConfig) -> None:
    """Close this loop's async client of ``config``."""
    clients = _async_clients.get(asyncio.get_running_loop())
    client = None if clients is None else clients.pop(config.cache_key, None)
    if client is not None:
        await client.aclose()
