"""The MongoDB stores' options, system checks and clients.

``LOCATION`` and ``OPTIONS`` are validated here (:func:`problems`, used by the system checks)
and turned into a :class:`MongoConfig`. Clients are shared per process: one
``pymongo.MongoClient`` per configuration, and one ``pymongo.AsyncMongoClient`` per
configuration *and event loop* (an async client belongs to the loop it first ran in).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from datetime import timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import pymongo
from bson.codec_options import CodecOptions

from django_sessionkit.stores import breaker

logger = logging.getLogger("django_sessionkit")

SCHEMES = ("mongodb", "mongodb+srv")
AUTO_REMOVE_MODES = ("native", "interval", "disabled")
_NUMBER = (int, float)

#: OPTIONS both MongoDB stores take, with the types each accepts.
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "DATABASE": (str,),
    "COLLECTION": (str,),
    "TIMEOUT": _NUMBER,
    "ADMIN_TIMEOUT": _NUMBER,
    "SERVER_SELECTION_TIMEOUT": _NUMBER,
    "CONNECT_TIMEOUT": _NUMBER,
    "RETRY_ATTEMPTS": (int,),
    "RETRY_BACKOFF_BASE": _NUMBER,
    "RETRY_BACKOFF_CAP": _NUMBER,
    "MAX_POOL_SIZE": (int,),
    "TLS": (bool,),
    "TLS_CA_FILE": (str,),
    "TLS_CERTIFICATE_KEY_FILE": (str,),
    "TLS_ALLOW_INVALID_CERTIFICATES": (bool,),
    "TLS_ALLOW_INVALID_HOSTNAMES": (bool,),
    "APP_NAME": (str,),
    "CREATE_INDEXES": (bool,),
    "AUTO_REMOVE": (str,),
    "AUTO_REMOVE_INTERVAL": _NUMBER,
    "CLIENT_KWARGS": (dict,),
    **breaker.OPTIONS,
}

DEFAULTS: dict[str, Any] = {
    # A session store sits on every request's path: a server that does not answer within
    # half a second is treated as down (a 503 at once) rather than holding the worker.
    # TIMEOUT bounds one command of the request path whole (pymongo's client-side operation
    # timeout): finding the server, connecting, the reply, and any retries. The admin, the
    # management commands and index builds wait up to ADMIN_TIMEOUT for a reply, but find
    # no server or connection any sooner than the request path.
    "TIMEOUT": 0.5,
    "ADMIN_TIMEOUT": 10.0,
    "SERVER_SELECTION_TIMEOUT": 0.5,
    "CONNECT_TIMEOUT": 0.5,
    "RETRY_ATTEMPTS": 3,
    "RETRY_BACKOFF_BASE": 0.01,
    "RETRY_BACKOFF_CAP": 0.5,
    "CREATE_INDEXES": True,
    "AUTO_REMOVE": "native",
    "AUTO_REMOVE_INTERVAL": 600,
}

#: OPTIONS → pymongo keyword arguments (timeouts in seconds → milliseconds).
_CLIENT_ARGUMENTS = {
    "SERVER_SELECTION_TIMEOUT": "serverSelectionTimeoutMS",
    "CONNECT_TIMEOUT": "connectTimeoutMS",
    "ADMIN_TIMEOUT": "socketTimeoutMS",
    "MAX_POOL_SIZE": "maxPoolSize",
    "TLS": "tls",
    "TLS_CA_FILE": "tlsCAFile",
    "TLS_CERTIFICATE_KEY_FILE": "tlsCertificateKeyFile",
    "TLS_ALLOW_INVALID_CERTIFICATES": "tlsAllowInvalidCertificates",
    "TLS_ALLOW_INVALID_HOSTNAMES": "tlsAllowInvalidHostnames",
    "APP_NAME": "appname",
}
_MILLISECONDS = ("SERVER_SELECTION_TIMEOUT", "CONNECT_TIMEOUT", "ADMIN_TIMEOUT")
_SECONDS = ("TIMEOUT", *_MILLISECONDS)
_TLS_OPTIONS = (
    "TLS_CA_FILE",
    "TLS_CERTIFICATE_KEY_FILE",
    "TLS_ALLOW_INVALID_CERTIFICATES",
    "TLS_ALLOW_INVALID_HOSTNAMES",
)

#: Every time comes back as an aware datetime in UTC.
CODEC_OPTIONS: CodecOptions[Any] = CodecOptions(tz_aware=True, tzinfo=timezone.utc)


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def url_database(location: Any) -> str | None:
    """The database named in a ``mongodb://host/DATABASE`` URL, if any."""
    if not isinstance(location, str):
        return None
    name = unquote(urlsplit(location).path.lstrip("/"))
    return name or None


def _url_options(location: str) -> set[str]:
    """The option names a URL sets itself (lower case: MongoDB's are case-insensitive)."""
    return {name.lower() for name, _ in parse_qsl(urlsplit(location).query)}


def problems(
    location: Any,
    options: Mapping[str, Any],
    *,
    store: str,
    own: Mapping[str, tuple[type, ...]] | None = None,
) -> list[str]:
    """Every problem in this LOCATION/OPTIONS pair, as messages naming the key.

    ``own``: the options a store takes on top of :data:`OPTION_TYPES`.
    """
    if not isinstance(options, Mapping):
        return [f"OPTIONS must be a dict, not {type(options).__name__}."]
    accepted = {**OPTION_TYPES, **(own or {})}
    found: list[str] = []
    for name, value in options.items():
        if name not in accepted:
            known = ", ".join(sorted(accepted))
            found.append(f"OPTIONS[{name!r}] is not a {store} option (known: {known}).")
        elif not isinstance(value, accepted[name]) or (
            isinstance(value, bool) and bool not in accepted[name]
        ):
            found.append(
                f"OPTIONS[{name!r}] must be {_type_names(accepted[name])}, "
                f"not {type(value).__name__}."
            )
    found += _location_problems(location)
    found += _value_problems(location, options)
    found += breaker.problems(options)
    return found


def _location_problems(location: Any) -> list[str]:
    if not isinstance(location, str) or not location:
        return [
            "LOCATION is required: a mongodb:// or mongodb+srv:// URL, e.g. "
            "'mongodb://127.0.0.1:27017/myapp'."
        ]
    parts = urlsplit(location)
    if parts.scheme not in SCHEMES:
        return [
            f"LOCATION {hide_password(location)!r} has scheme {parts.scheme!r}; "
            "use mongodb:// or mongodb+srv://."
        ]
    if not parts.netloc.rpartition("@")[2]:
        return [f"LOCATION {hide_password(location)!r} names no host."]
    return []


def _value_problems(location: Any, options: Mapping[str, Any]) -> list[str]:
    found = []
    for name in _SECONDS:
        value = options.get(name)
        if isinstance(value, _NUMBER) and not isinstance(value, bool) and value <= 0:
            found.append(
                f"OPTIONS[{name!r}] must be a number of seconds > 0, not {value!r}: "
                "a request must not wait forever."
            )
    for name in ("RETRY_BACKOFF_BASE", "RETRY_BACKOFF_CAP"):
        value = options.get(name)
        if isinstance(value, _NUMBER) and not isinstance(value, bool) and value < 0:
            found.append(f"OPTIONS[{name!r}] must be a number of seconds >= 0, not {value!r}.")
    attempts = options.get("RETRY_ATTEMPTS")
    if isinstance(attempts, int) and not isinstance(attempts, bool) and not 0 <= attempts <= 20:
        found.append(f"OPTIONS['RETRY_ATTEMPTS'] must be between 0 and 20, not {attempts!r}.")
    pool = options.get("MAX_POOL_SIZE")
    if isinstance(pool, int) and not isinstance(pool, bool) and pool < 1:
        found.append(f"OPTIONS['MAX_POOL_SIZE'] must be at least 1, not {pool!r}.")
    mode = options.get("AUTO_REMOVE")
    if isinstance(mode, str) and mode not in AUTO_REMOVE_MODES:
        found.append(
            f"OPTIONS['AUTO_REMOVE'] is {mode!r}; use one of {', '.join(AUTO_REMOVE_MODES)} "
            "(connect-mongo's autoRemove)."
        )
    interval = options.get("AUTO_REMOVE_INTERVAL")
    if isinstance(interval, _NUMBER) and not isinstance(interval, bool) and interval <= 0:
        found.append(f"OPTIONS['AUTO_REMOVE_INTERVAL'] must be seconds > 0, not {interval!r}.")
    for name in ("DATABASE", "COLLECTION"):
        value = options.get(name)
        if isinstance(value, str) and (not value or any(c in value for c in "$\0")):
            found.append(f"OPTIONS[{name!r}] is {value!r}: give a non-empty name without $.")
    kwargs = options.get("CLIENT_KWARGS")
    if isinstance(kwargs, dict) and not all(isinstance(k, str) for k in kwargs):
        found.append("OPTIONS['CLIENT_KWARGS'] keys must be pymongo's argument names (str).")
    given = [name for name in _TLS_OPTIONS if name in options]
    tls_url = isinstance(location, str) and (
        location.startswith("mongodb+srv://") or {"tls", "ssl"} & _url_options(location)
    )
    if given and options.get("TLS") is not True and not tls_url:
        found.append(f"OPTIONS {given} only apply to TLS connections: set OPTIONS['TLS'] = True.")
    return found


@dataclasses.dataclass(frozen=True)
class MongoConfig:
    location: str
    database: str
    collection: str
    kwargs: dict[str, Any]
    timeout: float
    retry_attempts: int
    backoff_base: float
    backoff_cap: float
    create_indexes: bool
    auto_remove: str
    auto_remove_interval: float

    @property
    def key(self) -> str:
        """What identifies this configuration's clients within a process."""
        return repr((self.location, sorted(self.kwargs.items(), key=lambda item: item[0])))


def parse(
    location: str, options: Mapping[str, Any], *, database: str, collection: str
) -> MongoConfig:
    """A :class:`MongoConfig` from options :func:`problems` found nothing wrong with;
    ``database`` and ``collection`` are the store's defaults (a database named in the URL
    comes before ``database``)."""
    values = {**DEFAULTS, **options}
    in_url = _url_options(location)
    kwargs: dict[str, Any] = {}
    for name, argument in _CLIENT_ARGUMENTS.items():
        if name not in values:
            continue
        if name not in options and argument.lower() in in_url:
            continue  # the URL's own value wins over our default
        value = values[name]
        kwargs[argument] = int(value * 1000) if name in _MILLISECONDS else value
    # The store retries itself, after a dropped connection only (RETRY_ATTEMPTS), each write
    # being safe to send twice. pymongo's own retry would come first and wait for the server
    # again on a server that is down (then the store's): one policy, in one place.
    for argument in ("retryWrites", "retryReads"):
        if argument.lower() not in in_url:
            kwargs[argument] = False
    kwargs.update(values.get("CLIENT_KWARGS") or {})
    return MongoConfig(
        location=location,
        database=values.get("DATABASE") or url_database(location) or database,
        collection=values.get("COLLECTION") or collection,
        kwargs=kwargs,
        timeout=float(values["TIMEOUT"]),
        retry_attempts=int(values["RETRY_ATTEMPTS"]),
        backoff_base=float(values["RETRY_BACKOFF_BASE"]),
        backoff_cap=float(values["RETRY_BACKOFF_CAP"]),
        create_indexes=bool(values["CREATE_INDEXES"]),
        auto_remove=str(values["AUTO_REMOVE"]),
        auto_remove_interval=float(values["AUTO_REMOVE_INTERVAL"]),
    )


# --- clients ----------------------------------------------------------------------

_lock = threading.Lock()
_sync_clients: dict[tuple[int, str], pymongo.MongoClient[Any]] = {}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, pymongo.AsyncMongoClient[Any]]
] = weakref.WeakKeyDictionary()


def sync_client(config: MongoConfig) -> pymongo.MongoClient[Any]:
    """This process's client for ``config`` (a client made before a fork is not reused)."""
    key = (os.getpid(), config.key)
    client = _sync_clients.get(key)
    if client is None:
        with _lock:
            client = _sync_clients.get(key)
            if client is None:
                client = pymongo.MongoClient(config.location, **config.kwargs)
                _sync_clients[key] = client
    return client


def async_client(config: MongoConfig) -> pymongo.AsyncMongoClient[Any]:
    """The running event loop's client for ``config``."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
    client = clients.get(config.key)
    if client is None:
        client = clients[config.key] = pymongo.AsyncMongoClient(config.location, **config.kwargs)
    return client


def forget(config: MongoConfig) -> None:
    """Close this process's sync client for ``config``."""
    with _lock:
        client = _sync_clients.pop((os.getpid(), config.key), None)
    if client is not None:
        client.close()


async def aforget(config: MongoConfig) -> None:
    """Close the running event loop's client for ``config``."""
    clients = _async_clients.get(asyncio.get_running_loop()) or {}
    client = clients.pop(config.key, None)
    if client is not None:
        await client.close()
