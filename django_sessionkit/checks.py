"""System checks for ``SESSIONKIT`` (ids ``sessionkit.E001``… and ``sessionkit.W001``…).

Each message names the key, the value found and what is accepted. The same
checks run when the middleware is built, so a server that never runs
``manage.py check`` (gunicorn, uvicorn) still refuses to start misconfigured.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_sessionkit.conf import (
    COMPAT_VALUES,
    COOKIE_KEYS,
    KEYS,
    LIFETIME_KEYS,
    MAX_SESSIONS_POLICIES,
    PRIORITY_VALUES,
    SAME_SITE_VALUES,
    STORE_KEYS,
    UNSET_VALUES,
    sessionkit_settings,
)

OUR_ENGINE = "django_sessionkit.engine"
EXPRESS_STORE = "django_sessionkit.stores.express.ExpressRedisStore"
EXPRESS_MONGO_STORE = "django_sessionkit.stores.mongo.ExpressMongoStore"
OUR_MIDDLEWARE = "django_sessionkit.middleware.SessionMiddleware"
DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"

# RFC 6265 cookie-name token: visible ASCII except separators.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

BOOL_KEYS = ("RESAVE", "ROLLING", "SAVE_UNINITIALIZED", "SIGNED")

#: The session table's user_agent column (models.Session.user_agent).
USER_AGENT_COLUMN = 1024


def _error(id_: int, message: str, hint: str | None = None) -> Error:
    return Error(message, hint=hint, id=f"sessionkit.E{id_:03d}")


def _key(name: str) -> str:
    return f"SESSIONKIT[{name!r}]"


def _cookie_key(name: str) -> str:
    return f"SESSIONKIT['COOKIE'][{name!r}]"


def _unknown(where: str, key: Any, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    return f"{where} has an unknown key {key!r}.{suggestion} Accepted: {', '.join(known)}."


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_secret(raw: Mapping[str, Any]) -> list[CheckMessage]:
    if "SECRET" not in raw or raw["SECRET"] is None:
        return []
    secret = raw["SECRET"]
    accepted = "a non-empty string, or a non-empty list of non-empty strings (the first signs)"
    if isinstance(secret, str):
        ok = bool(secret)
    elif isinstance(secret, (list, tuple)):
        ok = bool(secret) and all(isinstance(s, str) and s for s in secret)
    else:
        ok = False
    if ok:
        return []
    shown = "an empty value" if not secret else repr(type(secret).__name__)
    if isinstance(secret, (list, tuple)) and secret:
        shown = "a list with an empty or non-string entry"
    return [_error(3, f"{_key('SECRET')} is {shown}; it must be {accepted}.")]


def _check_cookie(raw: Mapping[str, Any]) -> list[CheckMessage]:
    cookie = raw.get("COOKIE", {})
    if cookie is None:
        return []
    if not isinstance(cookie, Mapping):
        return [_error(5, f"{_key('COOKIE')} is {cookie!r}; it must be a dict.")]
    problems: list[CheckMessage] = [
        _error(5, _unknown(_key("COOKIE"), k, list(COOKIE_KEYS)))
        for k in cookie
        if k not in COOKIE_KEYS
    ]
    if "MAX_AGE" in cookie and not (cookie["MAX_AGE"] is None or _is_count(cookie["MAX_AGE"], 0)):
        problems.append(
            _error(
                6,
                f"{_cookie_key('MAX_AGE')} is {cookie['MAX_AGE']!r}; it must be a whole number "
                "of seconds >= 0, or None for a cookie that ends when the browser closes.",
            )
        )
    for name in ("HTTP_ONLY", "PARTITIONED"):
        if name in cookie and not _is_bool(cookie[name]):
            problems.append(
                _error(7, f"{_cookie_key(name)} is {cookie[name]!r}; it must be True or False.")
            )
    secure = cookie.get("SECURE", settings.SESSION_COOKIE_SECURE)
    if "SECURE" in cookie and not (
        _is_bool(secure) or (isinstance(secure, str) and secure.lower() == "auto")
    ):
        problems.append(
            _error(8, f"{_cookie_key('SECURE')} is {secure!r}; it must be True, False or 'auto'.")
        )
    same_site = cookie.get("SAME_SITE", settings.SESSION_COOKIE_SAMESITE)
    if "SAME_SITE" in cookie and not (
        same_site is None
        or _is_bool(same_site)
        or (isinstance(same_site, str) and same_site.lower() in SAME_SITE_VALUES)
    ):
        problems.append(
            _error(
                9,
                f"{_cookie_key('SAME_SITE')} is {same_site!r}; it must be 'Strict', 'Lax', "
                "'None', 'auto' (any case), True (Strict), or False/None (attribute left out).",
            )
        )
    elif isinstance(same_site, str) and same_site.lower() == "none" and secure is False:
        problems.append(
            _error(
                10,
                f"{_cookie_key('SAME_SITE')} is 'None' but the cookie is not Secure: browsers "
                "reject SameSite=None without Secure.",
                hint="Set SESSIONKIT['COOKIE']['SECURE'] to True or 'auto'.",
            )
        )
    if "DOMAIN" in cookie and not (cookie["DOMAIN"] is None or isinstance(cookie["DOMAIN"], str)):
        problems.append(
            _error(11, f"{_cookie_key('DOMAIN')} is {cookie['DOMAIN']!r}; it must be a string.")
        )
    if "PATH" in cookie and not (isinstance(cookie["PATH"], str) and cookie["PATH"][:1] == "/"):
        problems.append(
            _error(
                11, f"{_cookie_key('PATH')} is {cookie['PATH']!r}; it must be a string like '/'."
            )
        )
    priority = cookie.get("PRIORITY")
    if priority is not None and not (
        isinstance(priority, str) and priority.lower() in PRIORITY_VALUES
    ):
        problems.append(
            _error(
                12,
                f"{_cookie_key('PRIORITY')} is {priority!r}; it must be 'Low', 'Medium', "
                "'High' (any case) or None.",
            )
        )
    if cookie.get("PARTITIONED") is True and secure is False:
        problems.append(
            Warning(
                f"{_cookie_key('PARTITIONED')} is True but the cookie is not Secure: browsers "
                "ignore Partitioned cookies without Secure.",
                hint="Set SESSIONKIT['COOKIE']['SECURE'] to True or 'auto'.",
                id="sessionkit.W001",
            )
        )
    return problems


def _check_genid(raw: Mapping[str, Any]) -> list[CheckMessage]:
    genid = raw.get("GENID")
    if genid is None or callable(genid):
        return []
    if not isinstance(genid, str):
        return [
            _error(
                13,
                f"{_key('GENID')} is {genid!r}; it must be the dotted path of a callable "
                "taking the request and returning a new id, or None.",
            )
        ]
    try:
        func = sessionkit_settings.GENID
    except ImportError as exc:
        return [_error(13, f"{_key('GENID')} is {genid!r}, which cannot be imported: {exc}.")]
    if not callable(func):
        return [_error(13, f"{_key('GENID')} is {genid!r}, which is not callable.")]
    return []


def _check_store(raw: Mapping[str, Any]) -> list[CheckMessage]:
    from django.utils.module_loading import import_string

    from django_sessionkit.stores.base import Store

    store = raw.get("STORE")
    if store is None:
        store = {}
    if not isinstance(store, Mapping):
        return [
            _error(
                16,
                f"{_key('STORE')} is {store!r}; it must be a dict like "
                "{'BACKEND': 'django_sessionkit.stores.redis.RedisStore', 'LOCATION': …, "
                "'OPTIONS': {…}}.",
            )
        ]
    problems: list[CheckMessage] = [
        _error(16, _unknown(_key("STORE"), k, list(STORE_KEYS)))
        for k in store
        if k not in STORE_KEYS
    ]
    options = store.get("OPTIONS")
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        problems.append(
            _error(16, f"SESSIONKIT['STORE']['OPTIONS'] is {options!r}; it must be a dict.")
        )
        return problems
    path = sessionkit_settings.STORE["BACKEND"]
    try:
        backend = import_string(path) if isinstance(path, str) else None
    except Exception as exc:  # any import-time failure is a configuration error
        return [
            *problems,
            _error(
                17, f"SESSIONKIT['STORE']['BACKEND'] is {path!r}, which cannot be imported: {exc}."
            ),
        ]
    if not (isinstance(backend, type) and issubclass(backend, Store)):
        return [
            *problems,
            _error(
                17,
                f"SESSIONKIT['STORE']['BACKEND'] is {path!r}; it must be the dotted path of a "
                "django_sessionkit.stores.base.Store subclass, e.g. "
                "'django_sessionkit.stores.database.DatabaseStore'.",
            ),
        ]
    messages = backend.check(store.get("LOCATION"), options)
    url_problems, replaced = _check_redis_location(backend, store.get("LOCATION"), options)
    problems += url_problems
    for message in messages:
        if message not in replaced:
            problems.append(_error(18, f"SESSIONKIT['STORE'] ({backend.__name__}): {message}"))
    return problems


#: The LOCATION forms the Redis stores accept, per mode (see stores/redis/connection.py).
REDIS_LOCATION_FORMS = {
    "standalone": "redis://[[user]:password@]host[:port][/db], rediss://… (the same over TLS) "
    "or unix:///path/to/redis.sock[?db=N]",
    "cluster": "a list of redis://[[user]:password@]host[:port], rediss://… or host:port "
    "entries (database 0 only)",
    "sentinel": "redis://[[user]:password@]SERVICE_NAME[/db] or rediss://… (the master's name, "
    "password and database), or None with OPTIONS['SERVICE_NAME']",
}


def _check_redis_location(
    backend: type, location: Any, options: Mapping[str, Any]
) -> tuple[list[CheckMessage], set[str]]:
    """E029 for each LOCATION URL of a Redis store that redis-py would refuse or read
    differently (``redis:/host``, ``redis://h/abc``, an unknown scheme, …), and the store's
    own messages about those URLs, which these replace."""
    from django_sessionkit.stores.express import ExpressRedisStore
    from django_sessionkit.stores.redis import RedisStore
    from django_sessionkit.stores.redis import connection as redis_client

    if not issubclass(backend, (RedisStore, ExpressRedisStore)):
        return [], set()
    if issubclass(backend, ExpressRedisStore):
        options = backend.connection_options(options)
    mode = redis_client.infer_mode(location, options)
    if mode not in redis_client.MODES or location in (None, ""):
        return [], set()  # the store reports these
    listed = isinstance(location, (list, tuple))
    if listed and mode != "cluster":
        return [], set()
    key = "SESSIONKIT['STORE']['LOCATION']" + (" entry" if listed else "")
    found: list[CheckMessage] = []
    replaced: set[str] = set()
    for url in location if listed else [location]:
        if not isinstance(url, str) or not url:
            continue  # the store reports these
        problem = _redis_url_problem(url, mode)
        if problem is None:
            continue
        if (store_said := redis_client.url_problem(url, mode)) is not None:
            replaced.add(store_said)
        shown = redis_client.hide_password(url)
        found.append(
            _error(
                29,
                f"{key} {shown!r} {problem}. Accepted in {mode} mode: "
                f"{REDIS_LOCATION_FORMS[mode]}.",
            )
        )
    return found, replaced


def _redis_url_problem(url: str, mode: str) -> str | None:
    """What is wrong with one LOCATION URL of a Redis store, or None."""
    import redis.connection

    from django_sessionkit.stores.redis.connection import SCHEMES

    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower() in SCHEMES:
        slashes = "///" if scheme.lower() == "unix" else "//"
        fixed = f"{scheme.lower()}:{slashes}{rest.lstrip('/')}"
        if not rest.startswith("//"):
            return f"has no '//' after '{scheme}:' (did you mean {fixed!r}?)"
        if scheme != scheme.lower():
            return f"has scheme {scheme!r}, which redis-py takes in lower case only"
    if mode == "cluster" and "://" not in url:
        url = f"redis://{url}"  # a cluster entry may be a bare host:port
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return f"has scheme {parts.scheme!r}" if parts.scheme else "has no scheme"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"has port {port!r}, which is not a port number (0 to 65535)"
    query = parse_qs(parts.query)
    databases = query.get("db", [])
    if parts.scheme == "unix":
        if mode == "cluster":
            return "is a unix socket, but a Redis Cluster is reached over TCP"
        if mode == "sentinel":
            return None  # the store says so (Sentinel hands out TCP addresses)
        if parts.hostname:
            return (
                f"names a host ({parts.hostname!r}) before the socket path: a unix socket URL "
                f"has three slashes, like 'unix:///{parts.hostname}{parts.path}'"
            )
        if not parts.path.strip("/"):
            return "has no socket path (unix:///path/to/redis.sock)"
    elif (path_db := unquote(parts.path).strip("/")) != "":
        databases = [path_db, *databases]
    for db in databases:
        if not re.fullmatch(r"[0-9]+", db):
            return f"has database {db!r}: a database is a whole number (/0, /1, …)"
        if mode == "cluster" and int(db) != 0:
            return f"has database {db!r}, but a Redis Cluster has only database 0"
    try:
        redis.connection.parse_url(url)
    except ValueError as exc:  # redis-py's own refusal, e.g. of a query value
        return f"is refused by redis-py ({str(exc).rstrip('.')})"
    return None


def _check_choices(raw: Mapping[str, Any]) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if "PROXY" in raw and raw["PROXY"] not in (None, True, False):
        problems.append(
            _error(14, f"{_key('PROXY')} is {raw['PROXY']!r}; it must be None, True or False.")
        )
    problems += [
        _error(15, f"{_key(name)} is {raw[name]!r}; it must be True or False.")
        for name in BOOL_KEYS
        if name in raw and not _is_bool(raw[name])
    ]
    unset = raw.get("UNSET", "keep")
    if not (isinstance(unset, str) and unset.lower() in UNSET_VALUES):
        problems.append(
            _error(19, f"{_key('UNSET')} is {unset!r}; it must be 'keep' or 'destroy'.")
        )
    if raw.get("COMPAT") not in COMPAT_VALUES:
        problems.append(
            _error(20, f"{_key('COMPAT')} is {raw['COMPAT']!r}; it must be None or 'express'.")
        )
    header = raw.get("CLIENT_IP_HEADER")
    if header is not None and not (isinstance(header, str) and re.fullmatch(r"[A-Z0-9_]+", header)):
        problems.append(
            _error(
                23,
                f"{_key('CLIENT_IP_HEADER')} is {header!r}; it must be None (use REMOTE_ADDR) or "
                "a request.META key such as 'HTTP_X_FORWARDED_FOR'.",
            )
        )
    if raw.get("MAX_SIZE") is not None and not _is_count(raw["MAX_SIZE"], 1):
        problems.append(
            _error(
                26,
                f"{_key('MAX_SIZE')} is {raw['MAX_SIZE']!r}; it must be a whole number of bytes "
                ">= 1, or None for no limit.",
            )
        )
    if raw.get("MAX_DEPTH") is not None and not _is_count(raw["MAX_DEPTH"], 1):
        problems.append(
            _error(
                30,
                f"{_key('MAX_DEPTH')} is {raw['MAX_DEPTH']!r}; it must be a whole number of "
                "levels >= 1 (lists and dicts inside one session value), or None for no limit.",
            )
        )
    for name, minimum in (("TRUSTED_PROXIES", 1), ("USER_AGENT_MAX_LENGTH", 0)):
        if name in raw and not _is_count(raw[name], minimum):
            problems.append(
                _error(
                    24, f"{_key(name)} is {raw[name]!r}; it must be a whole number >= {minimum}."
                )
            )
    problems += _check_lifetimes(raw)
    longest = raw.get("USER_AGENT_MAX_LENGTH")
    if isinstance(longest, int) and longest > USER_AGENT_COLUMN:
        problems.append(
            _error(
                24,
                f"{_key('USER_AGENT_MAX_LENGTH')} is {longest!r}; it must be at most "
                f"{USER_AGENT_COLUMN}, the length of the session table's user_agent column "
                "(PostgreSQL and MySQL refuse a longer value).",
            )
        )
    sensitive = raw.get("ADMIN_SENSITIVE_KEYS")
    if sensitive is not None and not (
        isinstance(sensitive, (list, tuple)) and all(isinstance(s, str) and s for s in sensitive)
    ):
        problems.append(
            _error(
                25,
                f"{_key('ADMIN_SENSITIVE_KEYS')} is {sensitive!r}; it must be a list of "
                "non-empty strings (parts of key names to mask in the admin), or None.",
            )
        )
    return problems


def _check_lifetimes(raw: Mapping[str, Any]) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    for name in LIFETIME_KEYS:
        value = raw.get(name)
        if value is not None and not _is_count(value, 1):
            problems.append(
                _error(
                    31,
                    f"{_key(name)} is {value!r}; it must be a whole number of seconds >= 1, "
                    "or None for no limit.",
                )
            )
    most = raw.get("MAX_SESSIONS_PER_USER")
    if most is not None and not _is_count(most, 1):
        problems.append(
            _error(
                31,
                f"{_key('MAX_SESSIONS_PER_USER')} is {most!r}; it must be a whole number of "
                "sessions >= 1, or None for no limit.",
            )
        )
    problems += _check_session_limit(raw)
    touch_after = raw.get("TOUCH_AFTER")
    if touch_after is not None and not _is_count(touch_after, 0):
        problems.append(
            _error(
                31,
                f"{_key('TOUCH_AFTER')} is {touch_after!r}; it must be a whole number of "
                "seconds >= 0 (0: touch on every request), or None.",
            )
        )
    keep = raw.get("KEEP_ENDED")
    if keep is not None and not _is_count(keep, 0):
        problems.append(
            _error(
                32,
                f"{_key('KEEP_ENDED')} is {keep!r}; it must be a whole number of seconds >= 0 "
                "(how long ended sessions are kept for the audit trail; 0, the default, turns "
                "the audit off).",
            )
        )
    flag = raw.get("END_SESSIONS_ON_PASSWORD_CHANGE")
    if flag is not None and not _is_bool(flag):
        problems.append(
            _error(
                31,
                f"{_key('END_SESSIONS_ON_PASSWORD_CHANGE')} is {flag!r}; it must be True or False.",
            )
        )
    idle, absolute = raw.get("IDLE_TIMEOUT"), raw.get("ABSOLUTE_TIMEOUT")
    idle = idle if _is_count(idle, 1) else None
    absolute = absolute if _is_count(absolute, 1) else None
    touch_after = touch_after if _is_count(touch_after, 1) else None
    if idle is not None and touch_after is not None and touch_after >= idle:
        problems.append(
            Warning(
                f"{_key('TOUCH_AFTER')} ({touch_after}) is not shorter than "
                f"{_key('IDLE_TIMEOUT')} ({idle}): an active session could end as idle "
                "between two touches.",
                hint="Make TOUCH_AFTER a fraction of IDLE_TIMEOUT, or leave it unset.",
                id="sessionkit.W004",
            )
        )
    if idle is not None and absolute is not None and idle >= absolute:
        problems.append(
            Warning(
                f"{_key('IDLE_TIMEOUT')} ({idle}) is not shorter than "
                f"{_key('ABSOLUTE_TIMEOUT')} ({absolute}): it can never take effect.",
                id="sessionkit.W005",
            )
        )
    return problems


def _check_session_limit(raw: Mapping[str, Any]) -> list[CheckMessage]:
    """MAX_SESSIONS_POLICY and MAX_SESSIONS_MESSAGE (MAX_SESSIONS_PER_USER is checked with
    the lifetimes)."""
    from django.utils.functional import Promise

    problems: list[CheckMessage] = []
    policy = raw.get("MAX_SESSIONS_POLICY")
    if policy is not None and policy not in MAX_SESSIONS_POLICIES:
        accepted = " or ".join(repr(p) for p in MAX_SESSIONS_POLICIES)
        problems.append(
            _error(
                31,
                f"{_key('MAX_SESSIONS_POLICY')} is {policy!r}; it must be {accepted} (what a "
                "login past MAX_SESSIONS_PER_USER does: end the user's least recently seen "
                "session, or fail), or None for 'evict_oldest'.",
            )
        )
    text = raw.get("MAX_SESSIONS_MESSAGE")
    if text is not None and not (isinstance(text, (str, Promise)) and str(text).strip()):
        problems.append(
            _error(
                31,
                f"{_key('MAX_SESSIONS_MESSAGE')} is {text!r}; it must be a non-empty string "
                "(a lazy translation is fine; '{limit}' in it becomes MAX_SESSIONS_PER_USER), "
                "or None for the built-in message.",
            )
        )
    # (a settings file that spells out the defaults is not warned about)
    named = [
        name
        for name, default in (
            ("MAX_SESSIONS_POLICY", "evict_oldest"),
            ("MAX_SESSIONS_MESSAGE", None),
        )
        if raw.get(name) not in (None, default)
    ]
    if named and raw.get("MAX_SESSIONS_PER_USER") is None:
        problems.append(
            Warning(
                f"{' and '.join(_key(n) for n in named)} set, but "
                f"{_key('MAX_SESSIONS_PER_USER')} is not: there is no limit to apply.",
                hint="Set MAX_SESSIONS_PER_USER, or remove the setting.",
                id="sessionkit.W007",
            )
        )
    return problems


def _check_refusing_store(raw: Mapping[str, Any]) -> list[CheckMessage]:
    """With MAX_SESSIONS_POLICY = "refuse", the store must have a per-user login lock."""
    from django.db import connections

    from django_sessionkit.stores.base import Store
    from django_sessionkit.stores.database import LOCKING_VENDORS, DatabaseStore

    if raw.get("MAX_SESSIONS_POLICY") != "refuse" or not _is_count(
        raw.get("MAX_SESSIONS_PER_USER"), 1
    ):
        return []
    if not isinstance(raw.get("STORE") or {}, Mapping):
        return []  # reported by _check_store (E016)
    store = sessionkit_settings.STORE
    try:
        backend = import_string(store["BACKEND"]) if isinstance(store["BACKEND"], str) else None
    except Exception:  # reported by _check_store (E017)
        return []
    if not isinstance(backend, type) or not issubclass(backend, Store):
        return []
    why = None
    if not backend.locks_users:
        why = f"{backend.__name__} has no per-user lock"
    elif issubclass(backend, DatabaseStore):
        alias = store["LOCATION"] or "default"
        vendor = connections[alias].vendor if alias in connections.settings else None
        if vendor is not None and vendor not in LOCKING_VENDORS:
            why = f"the database store has no per-user lock on {vendor}"
    if why is None:
        return []
    return [
        _error(
            33,
            f"{_key('MAX_SESSIONS_POLICY')} is 'refuse', but {why}: logins past the limit "
            "could not be refused exactly when they race.",
            hint="Use the database store on PostgreSQL, MySQL, MariaDB or SQLite, a Redis or "
            "MongoDB store, or MAX_SESSIONS_POLICY = 'evict_oldest'.",
        )
    ]


def _check_compat(raw: Mapping[str, Any]) -> list[CheckMessage]:
    from django.utils.module_loading import import_string

    from django_sessionkit.stores.express import ExpressLayout

    if not isinstance(raw.get("STORE") or {}, Mapping):
        return []  # reported by _check_store (E016)
    path = sessionkit_settings.STORE["BACKEND"]
    try:
        backend = import_string(path) if isinstance(path, str) else None
    except Exception:  # reported by _check_store (E017)
        return []
    express_store = isinstance(backend, type) and issubclass(backend, ExpressLayout)
    # The hints name the store of the same kind (the Mongo modules need pymongo: by name).
    on_mongo = isinstance(backend, type) and "mongo" in backend.__module__
    express_backend = EXPRESS_MONGO_STORE if on_mongo else EXPRESS_STORE
    if raw.get("COMPAT") != "express":
        if not express_store:
            return []
        return [
            _error(
                27,
                f"SESSIONKIT['STORE']['BACKEND'] is {path!r} but SESSIONKIT['COMPAT'] is "
                f"{raw.get('COMPAT')!r}: the store would be keyed by hashed ids, which an "
                "Express app cannot find.",
                hint="Set SESSIONKIT['COMPAT'] to 'express', or use "
                + ("MongoStore." if on_mongo else "RedisStore."),
            )
        ]
    problems: list[CheckMessage] = []
    if not express_store:
        problems.append(
            _error(
                27,
                f"SESSIONKIT['COMPAT'] is 'express' but SESSIONKIT['STORE']['BACKEND'] is "
                f"{path!r}; an Express app (connect-redis, connect-mongo) only shares sessions "
                "stored in its layout.",
                hint=f"Set SESSIONKIT['STORE']['BACKEND'] to {express_backend!r}.",
            )
        )
    problems.append(
        Warning(
            "SESSIONKIT['COMPAT'] is 'express': session ids are stored raw, as Redis keys or "
            "MongoDB _ids (connect-redis's and connect-mongo's layouts), not as SHA-256 "
            "hashes; anyone who can read that store can take over every live session.",
            hint="Keep that store private (password or ACL, TLS, no shared dumps or backups); "
            "see docs/express-interop.md.",
            id="sessionkit.W002",
        )
    )
    loader = raw.get("EXPRESS_USER_LOADER")
    if loader is not None:
        try:
            func = import_string(loader) if isinstance(loader, str) else loader
            reason = "which is not callable"
        except ImportError as exc:
            func, reason = None, f"which cannot be imported: {exc}"
        if not callable(func):
            problems.append(
                _error(
                    28,
                    f"{_key('EXPRESS_USER_LOADER')} is {loader!r}, {reason}; it must be the "
                    "dotted path of a callable (value, request) -> user or None.",
                )
            )
    key = raw.get("EXPRESS_USER_KEY")
    if key is not None and not (isinstance(key, str) and key):
        problems.append(
            _error(28, f"{_key('EXPRESS_USER_KEY')} is {key!r}; it must be a non-empty string.")
        )
    return problems


def check_settings() -> list[CheckMessage]:
    """Every problem with ``settings.SESSIONKIT``."""
    raw = getattr(settings, "SESSIONKIT", None)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return [_error(1, f"SESSIONKIT is {type(raw).__name__}; it must be a dict.")]
    problems: list[CheckMessage] = [
        _error(2, _unknown("SESSIONKIT", k, list(KEYS))) for k in raw if k not in KEYS
    ]
    name = raw.get("NAME")
    if name is not None and not (isinstance(name, str) and _TOKEN.match(name)):
        problems.append(
            _error(
                4,
                f"{_key('NAME')} is {name!r}; a cookie name must be a non-empty string of "
                "letters, digits and !#$%&'*+-.^_`|~ (no spaces, '=', ';' or ',').",
            )
        )
    problems += _check_secret(raw)
    problems += _check_cookie(raw)
    problems += _check_genid(raw)
    problems += _check_choices(raw)
    problems += _check_store(raw)
    problems += _check_compat(raw)
    problems += _check_refusing_store(raw)
    return problems


def check_middleware() -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    ours = OUR_MIDDLEWARE in middleware
    problems: list[CheckMessage] = []
    if ours and DJANGO_MIDDLEWARE in middleware:
        problems.append(
            _error(
                21,
                f"MIDDLEWARE has both {DJANGO_MIDDLEWARE!r} and {OUR_MIDDLEWARE!r}; they would "
                "both handle the session cookie.",
                hint=f"Remove {DJANGO_MIDDLEWARE!r}.",
            )
        )
    if settings.SESSION_ENGINE == OUR_ENGINE and not ours:
        problems.append(
            _error(
                22,
                f"SESSION_ENGINE is {OUR_ENGINE!r} but {OUR_MIDDLEWARE!r} is not in MIDDLEWARE.",
                hint=f"Put {OUR_MIDDLEWARE!r} where Django's SessionMiddleware was.",
            )
        )
    if ours and settings.SESSION_ENGINE != OUR_ENGINE:
        problems.append(
            _error(
                22,
                f"{OUR_MIDDLEWARE!r} is in MIDDLEWARE but SESSION_ENGINE is "
                f"{settings.SESSION_ENGINE!r}.",
                hint=f"Set SESSION_ENGINE = {OUR_ENGINE!r}.",
            )
        )
    return problems


def _runs_djangos_middleware() -> bool:
    """Django's SessionMiddleware is in MIDDLEWARE (and is not aliased to ours)."""
    if DJANGO_MIDDLEWARE not in list(getattr(settings, "MIDDLEWARE", None) or []):
        return False
    from django_sessionkit.middleware import SessionMiddleware

    return not issubclass(import_string(DJANGO_MIDDLEWARE), SessionMiddleware)


def refuse_django_middleware() -> None:
    """Raise ``ImproperlyConfigured`` when this engine would run behind Django's own
    ``SessionMiddleware``: that one would accept a bare ``session_key`` as a cookie,
    set cookies without the signature and ignore the express options."""
    if settings.SESSION_ENGINE == OUR_ENGINE and _runs_djangos_middleware():
        raise ImproperlyConfigured(
            f"SESSION_ENGINE is {OUR_ENGINE!r} but MIDDLEWARE has Django's "
            f"{DJANGO_MIDDLEWARE!r}. Replace it with {OUR_MIDDLEWARE!r}, in the same place."
        )


def check_expiry_events() -> list[CheckMessage]:
    """W006 when something listens to ``session_ended`` but the store cannot report every
    session that expires (run after every app's ``ready()``, where receivers connect)."""
    from django_sessionkit.signals import session_ended
    from django_sessionkit.stores import get_store

    if not session_ended.has_listeners():
        return []
    reason = get_store().expiry_unreported()
    if reason is None:
        return []
    return [
        Warning(
            "A receiver listens to session_ended, but expired sessions of this store are not "
            f"all reported: {reason}",
            id="sessionkit.W006",
        )
    ]


@register()
def sessionkit_checks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems = check_settings() + check_middleware()
    if not any(problem.is_serious() for problem in problems):
        problems += check_expiry_events()
    return problems


def configuration_errors() -> list[str]:
    """The serious problems with SESSIONKIT, formatted, for failing at start-up."""
    return [f"{message.id}: {message.msg}" for message in check_settings() if message.is_serious()]
