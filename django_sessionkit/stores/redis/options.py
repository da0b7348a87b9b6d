"""What the Redis stores accept as ``LOCATION`` and ``OPTIONS``: the option table, the
defaults, the checks behind ``manage.py check`` (:func:`problems`) and :func:`describe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

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


def locations(location: Any) -> list[Any]:
    return list(location) if isinstance(location, (list, tuple)) else [location]


def url_problem(url: Any, mode: str) -> str | None:
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
            for url in locations(location):
                if (problem := url_problem(url, mode)) is not None:
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
            if sentinel_address(entry) is None:
                found.append(
                    f"OPTIONS['SENTINELS'] entry {entry!r} is not (host, port) or 'host:port'."
                )
    if location not in (None, ""):
        if not isinstance(location, str):
            found.append("LOCATION in sentinel mode is one URL: redis://[:password@]SERVICE/DB.")
        elif (problem := url_problem(location, "sentinel")) is not None:
            found.append(problem)
        elif urlsplit(location).scheme == "unix":
            found.append("LOCATION in sentinel mode cannot be unix://: Sentinel hands out TCP.")
    if not service_name(location, options):
        found.append(
            "MODE 'sentinel' needs the master's name: OPTIONS['SERVICE_NAME'] or the host of "
            "LOCATION (redis://SERVICE/0)."
        )
    return found


def _ssl_problems(location: Any, options: Mapping[str, Any], mode: str) -> list[str]:
    found = []
    given = [name for name in SSL_OPTIONS if name in options]
    urls = [u for u in locations(location) if isinstance(u, str)]
    tls = any(u.startswith("rediss://") for u in urls)
    if given and not tls:
        found.append(f"OPTIONS {given} only apply to TLS connections: use a rediss:// LOCATION.")
    reqs = options.get("SSL_CERT_REQS")
    if isinstance(reqs, str) and reqs.lower() not in SSL_CERT_REQS:
        found.append(
            f"OPTIONS['SSL_CERT_REQS'] is {reqs!r}; use one of {', '.join(SSL_CERT_REQS)}."
        )
    return found


def sentinel_address(entry: Any) -> tuple[str, int] | None:
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


def service_name(location: Any, options: Mapping[str, Any]) -> str | None:
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
            if (a := sentinel_address(entry)) is not None
        )
        where = f"sentinel {service_name(location, options)} via {sentinels}"
    elif mode == "cluster":
        where = "cluster " + ",".join(_hide_password(str(u)) for u in locations(location))
    else:
        where = _hide_password(str(location))
    return f"Redis ({where}, prefix {prefix!r})"


def hide_password(value: Sequence[str] | str) -> str:
    return _hide_password(value) if isinstance(value, str) else ",".join(map(_hide_password, value))
