"""Configuration and connection pools of :class:`~django_sessionkit.stores.redis.RedisStore`.

``LOCATION`` and ``OPTIONS`` are validated here (:func:`problems`, used by the
system checks) and turned into a :class:`RedisConfig`. Clients are shared per
process: one sync client per configuration, and one async client per
configuration *and event loop*, because a ``redis.asyncio`` client belongs to
the loop it first ran in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import weakref
from collections.abc import Mapping, Sequence
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
from redis.exceptions import ConnectionError

from django_sessionkit.stores import breaker

MODES = ("standalone", "sentinel", "cluster")
SCHEMES = ("redis", "rediss", "unix")
SSL_CERT_REQS = ("required", "optional", "none")

_NUMBER = (int, float)

#: Every OPTIONS key, with the types it accepts.
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "PREFIX": (str,),
    "MODE": (str,),
    "SENTINELS": (list, tuple),
    "SERVICE_NAME": (str,),
    "SENTINEL_KWARGS": (dict,),
    "SOCKET_TIMEOUT": _NUMBER,
    "SOCKET_CONNECT_TIMEOUT": _NUMBER,
    "RETRY_ATTEMPTS": (int,),
    "RETRY_BACKOFF_BASE": _NUMBER,
    "RETRY_BACKOFF_CAP": _NUMBER,
    "MAX_CONNECTIONS": (int,),
    "HEALTH_CHECK_INTERVAL": _NUMBER,
    "SSL_CA_CERTS": (str,),
    "SSL_CERTFILE": (str,),
    "SSL_KEYFILE": (str,),
    "SSL_CERT_REQS": (str,),
    "SSL_CHECK_HOSTNAME": (bool,),
    "CONNECTION_POOL_KWARGS": (dict,),
    "INDEX_SHARDS": (int,),
    **breaker.OPTIONS,
}

SSL_OPTIONS = ("SSL_CA_CERTS", "SSL_CERTFILE", "SSL_KEYFILE", "SSL_CERT_REQS", "SSL_CHECK_HOSTNAME")

#: The most index shards a store may have (a listing reads a page from each).
MAX_SHARDS = 256

DEFAULTS: dict[str, Any] = {
    "PREFIX": "sessionkit:",
    # A session store sits on every request's path: a server that does not answer within
    # half a second is treated as down (a 503 at once) rather than holding the worker.
    "SOCKET_TIMEOUT": 0.5,
    "SOCKET_CONNECT_TIMEOUT": 0.5,
    "RETRY_ATTEMPTS": 3,
    "RETRY_BACKOFF_BASE": 0.01,
    "RETRY_BACKOFF_CAP": 0.5,
    # Index shards, each a hash tag of its own: on a Cluster the admin's indexes spread
    # over the masters instead of taking one master a write for every save.
    "INDEX_SHARDS": 16,
}


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def infer_mode(location: Any, options: Mapping[str, Any]) -> str:
    mode = options.get("MODE")
    if isinstance(mode, str):
        return mode.lower()
    if options.get("SENTINELS"):
        return "sentinel"
    if isinstance(location, (list, tuple)):
        return "cluster"
    return "standalone"


def _locations(location: Any) -> list[Any]:
    return list(location) if isinstance(location, (list, tuple)) else [location]


def _url_problem(url: Any, mode: str) -> str | None:
    if not isinstance(url, str) or not url:
        return f"LOCATION entries must be URL strings, not {url!r}."
    if mode == "cluster" and "://" not in url:
        url = f"redis://{url}"
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return (
            f"LOCATION {_hide_password(url)!r} has scheme {parts.scheme!r}; "
            f"use redis://, rediss:// or unix://."
        )
    if mode == "cluster" and parts.scheme == "unix":
        return "A Redis Cluster is reached over TCP: unix:// does not work with MODE 'cluster'."
    if mode == "cluster" and parts.path.strip("/") not in ("", "0"):
        return f"LOCATION {_hide_password(url)!r}: a Redis Cluster has only database 0."
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"LOCATION {_hide_password(url)!r} has an invalid port."
    return None


def problems(location: Any, options: Mapping[str, Any]) -> list[str]:
    """Every problem in this LOCATION/OPTIONS pair, as messages naming the key."""
    found: list[str] = []
    if not isinstance(options, Mapping):
        return [f"OPTIONS must be a dict, not {type(options).__name__}."]
    for name, value in options.items():
        if name not in OPTION_TYPES:
            known = ", ".join(sorted(OPTION_TYPES))
            found.append(f"OPTIONS[{name!r}] is not a RedisStore option (known: {known}).")
        elif not isinstance(value, OPTION_TYPES[name]) or (
            isinstance(value, bool) and bool not in OPTION_TYPES[name]
        ):
            found.append(
                f"OPTIONS[{name!r}] must be {_type_names(OPTION_TYPES[name])}, "
                f"not {type(value).__name__}."
            )
    mode = infer_mode(location, options)
    if mode not in MODES:
        found.append(f"OPTIONS['MODE'] is {options.get('MODE')!r}; use one of {', '.join(MODES)}.")
        return found
    found += _number_problems(options)
    found += breaker.problems(options)
    prefix = options.get("PREFIX", DEFAULTS["PREFIX"])
    if isinstance(prefix, str) and mode == "cluster" and ("{" in prefix or "}" in prefix):
        found.append(
            "OPTIONS['PREFIX'] must not contain '{' or '}' in cluster mode: a hash tag in the "
            "prefix would put every session on one node."
        )
    if mode == "sentinel":
        found += _sentinel_problems(location, options)
    else:
        if location in (None, "", [], ()):
            found.append(
                f"LOCATION is required in {mode} mode (a redis://, rediss:// or unix:// URL)."
            )
        elif mode == "standalone" and not isinstance(location, str):
            found.append(
                "LOCATION must be one URL string in standalone mode "
                "(a list of URLs means MODE 'cluster')."
            )
        else:
            for url in _locations(location):
                if (problem := _url_problem(url, mode)) is not None:
                    found.append(problem)
        for name in ("SENTINELS", "SERVICE_NAME", "SENTINEL_KWARGS"):
            if name in options:
                found.append(f"OPTIONS[{name!r}] only applies to MODE 'sentinel', not {mode!r}.")
    found += _ssl_problems(location, options, mode)
    return found


def _number_problems(options: Mapping[str, Any]) -> list[str]:
    found = []
    for name in (
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "RETRY_BACKOFF_BASE",
        "RETRY_BACKOFF_CAP",
        "HEALTH_CHECK_INTERVAL",
    ):
        value = options.get(name)
        if isinstance(value, _NUMBER) and not isinstance(value, bool) and value < 0:
            found.append(f"OPTIONS[{name!r}] must be a number of seconds >= 0, not {value!r}.")
    for name in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"):
        if name in options and options[name] == 0:
            found.append(f"OPTIONS[{name!r}] must be > 0: a request must not wait forever.")
    attempts = options.get("RETRY_ATTEMPTS")
    if isinstance(attempts, int) and not isinstance(attempts, bool) and not 0 <= attempts <= 20:
        found.append(f"OPTIONS['RETRY_ATTEMPTS'] must be between 0 and 20, not {attempts!r}.")
    shards = options.get("INDEX_SHARDS")
    if isinstance(shards, int) and not isinstance(shards, bool) and not 1 <= shards <= MAX_SHARDS:
        found.append(
            f"OPTIONS['INDEX_SHARDS'] must be between 1 and {MAX_SHARDS}, not {shards!r} "
            "(16 spreads the indexes evenly over 3 to 12 Cluster masters; 1 is the single "
            "index of earlier releases)."
        )
    connections = options.get("MAX_CONNECTIONS")
    if isinstance(connections, int) and not isinstance(connections, bool) and connections < 1:
        found.append(f"OPTIONS['MAX_CONNECTIONS'] must be at least 1, not {connections!r}.")
    return found


def _sentinel_problems(location: Any, options: Mapping[str, Any]) -> list[str]:
    found = []
    sentinels = options.get("SENTINELS")
    if not sentinels:
        found.append("MODE 'sentinel' needs OPTIONS['SENTINELS'], a list of (host, port).")
    elif isinstance(sentinels, (list, tuple)):
        for entry in sentinels:
            if _sentinel_address(entry) is None:
                found.append(
                    f"OPTIONS['SENTINELS'] entry {entry!r} is not (host, port) or 'host:port'."
                )
    if location not in (None, ""):
        if not isinstance(location, str):
            found.append("LOCATION in sentinel mode is one URL: redis://[:password@]SERVICE/DB.")
        elif (problem := _url_problem(location, "sentinel")) is not None:
            found.append(problem)
        elif urlsplit(location).scheme == "unix":
            found.append("LOCATION in sentinel mode cannot be unix://: Sentinel hands out TCP.")
    if not _service_name(location, options):
        found.append(
            "MODE 'sentinel' needs the master's name: OPTIONS['SERVICE_NAME'] or the host of "
            "LOCATION (redis://SERVICE/0)."
        )
    return found


def _ssl_problems(location: Any, options: Mapping[str, Any], mode: str) -> list[str]:
    found = []
    given = [name for name in SSL_OPTIONS if name in options]
    urls = [u for u in _locations(location) if isinstance(u, str)]
    tls = any(u.startswith("rediss://") for u in urls)
    if given and not tls:
        found.append(f"OPTIONS {given} only apply to TLS connections: use a rediss:// LOCATION.")
    reqs = options.get("SSL_CERT_REQS")
    if isinstance(reqs, str) and reqs.lower() not in SSL_CERT_REQS:
        found.append(
            f"OPTIONS['SSL_CERT_REQS'] is {reqs!r}; use one of {', '.join(SSL_CERT_REQS)}."
        )
    return found


def _sentinel_address(entry: Any) -> tuple[str, int] | None:
    if isinstance(entry, str):
        host, _, raw_port = entry.rpartition(":")
    elif isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
        host, raw_port = entry
    else:
        return None
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        return None
    return (host, port) if host and 0 < port < 65536 else None


def _service_name(location: Any, options: Mapping[str, Any]) -> str | None:
    name = options.get("SERVICE_NAME")
    if isinstance(name, str) and name:
        return name
    if isinstance(location, str) and location:
        host = urlsplit(location).hostname
        return unquote(host) if host else None
    return None


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def describe(location: Any, options: Mapping[str, Any]) -> str:
    """Where the store lives, passwords hidden: for logs and StoreUnavailable."""
    mode = infer_mode(location, options)
    prefix = options.get("PREFIX", DEFAULTS["PREFIX"])
    if mode == "sentinel":
        sentinels = ",".join(
            f"{a[0]}:{a[1]}"
            for entry in options.get("SENTINELS") or ()
            if (a := _sentinel_address(entry)) is not None
        )
        where = f"sentinel {_service_name(location, options)} via {sentinels}"
    elif mode == "cluster":
        where = "cluster " + ",".join(_hide_password(str(u)) for u in _locations(location))
    else:
        where = _hide_password(str(location))
    return f"Redis ({where}, prefix {prefix!r})"


# --- building clients ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RedisConfig:
    mode: str
    location: Any
    options: Mapping[str, Any]

    @property
    def prefix(self) -> str:
        return str(self.options.get("PREFIX", DEFAULTS["PREFIX"]))

    @property
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
    for entry in _locations(location):
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
        first = _locations(config.location)[0]
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in _cluster_nodes(config.location)]
        kwargs.pop("health_check_interval", None)
        return redis.cluster.RedisCluster(
            startup_nodes=nodes, **_url_credentials(first if "://" in first else None), **kwargs
        )
    if config.mode == "sentinel":
        sentinels = [_sentinel_address(e) for e in config.options["SENTINELS"]]
        sentinel = redis.sentinel.Sentinel(
            sentinels, sentinel_kwargs=_sentinel_kwargs(config), **kwargs
        )
        name = _service_name(config.location, config.options) or ""
        return sentinel.master_for(name, **_master_kwargs(config))
    return redis.Redis.from_url(config.location, **kwargs)


def build_async(config: RedisConfig) -> Any:
    kwargs = config.connection_kwargs(asyncio_client=True)
    if config.mode == "cluster":
        first = _locations(config.location)[0]
        nodes = [
            redis.asyncio.cluster.ClusterNode(h, p) for h, p in _cluster_nodes(config.location)
        ]
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, **_url_credentials(first if "://" in first else None), **kwargs
        )
    if config.mode == "sentinel":
        sentinels = [_sentinel_address(e) for e in config.options["SENTINELS"]]
        sentinel = redis.asyncio.sentinel.Sentinel(
            sentinels, sentinel_kwargs=_sentinel_kwargs(config), **kwargs
        )
        name = _service_name(config.location, config.options) or ""
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
        leftovers = [
            c.pop(config.cache_key) for c in _async_clients.values() if config.cache_key in c
        ]
    if sync is not None:
        sync.close()
    return leftovers


async def aforget(config: RedisConfig) -> None:
    """Close this loop's async client of ``config``."""
    clients = _async_clients.get(asyncio.get_running_loop())
    client = None if clients is None else clients.pop(config.cache_key, None)
    if client is not None:
        await client.aclose()


def hide_password(value: Sequence[str] | str) -> str:
    return _hide_password(value) if isinstance(value, str) else ",".join(map(_hide_password, value))
