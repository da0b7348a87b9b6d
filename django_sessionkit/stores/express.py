"""ExpressRedisStore: sessions in connect-redis's own layout, shared with an Express app.

For ``SESSIONKIT["COMPAT"] = "express"``: a Django site and an Express app
(express-session + connect-redis) on one Redis read and write the same sessions::

    SESSIONKIT = {
        "COMPAT": "express",
        "NAME": "connect.sid",
        "SECRET": ["the Express app's secret"],
        "STORE": {
            "BACKEND": "django_sessionkit.stores.express.ExpressRedisStore",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "OPTIONS": {"PREFIX": "sess:"},
        },
    }

Layout (connect-redis 7 to 10): key ``PREFIX + id`` (the raw session id: the engine hands
this store the id itself in this mode), value express-session's JSON, with its ``cookie``
object first and the application's keys after it::

    {"cookie":{"originalMaxAge":86400000,"expires":"2026-11-24T08:57:30.736Z",
     "httpOnly":true,"path":"/"},"views":2,"_auth_user_id":"1",
     "_sessionkit":{"v":3,"c":1795424250736,"l":1795424252000,"ip":"192.0.2.1","ua":"…"}}

``_sessionkit`` holds what connect-redis has no place for (version, created, last seen,
IP, user agent). express-session loads unknown keys into ``req.session`` and writes
them back untouched, so the Express side keeps it.

``OPTIONS``: every :class:`~django_sessionkit.stores.redis.RedisStore` connection option
(``MODE``, ``SENTINELS``, timeouts, TLS…) plus connect-redis's own:

``PREFIX`` (``"sess:"``), ``TTL`` (86400 seconds: used when the cookie has no expiry, i.e.
a browser-session cookie), ``DISABLE_TOUCH`` (False), ``DISABLE_TTL`` (False).

TTL follows connect-redis's ``getTTL``: seconds until ``cookie.expires`` rounded up, or
``TTL`` when the cookie has none; a save whose TTL is <= 0 deletes the key. A touch is one
``EXPIRE`` (the JSON is not rewritten, so its ``cookie.expires`` goes stale exactly as
with connect-redis; the key's TTL is the truth and is what :meth:`load` reports).

Saves are read-modify-write: ``GET``, then a script that writes only if the value is
still the one read (compared by SHA-1), else the store reads again and re-applies this
request's :class:`~django_sessionkit.stores.base.Changes` on the newer JSON. So the
keys the Express app wrote meanwhile survive, and a session deleted meanwhile (an
Express logout) is never re-created. Express itself writes its whole loaded copy back,
so a Django change made while an Express request is in flight can still be lost there.

connect-redis keeps no index: ``count``, ``list``, ``delete_for_user`` and
``find_by_prefix`` SCAN every key under the prefix — O(keyspace) in this mode. The
async methods run the sync ones in a thread.

:class:`ExpressLayout` holds what does not depend on Redis (the JSON, the listings over
every session); :class:`~django_sessionkit.stores.mongo.ExpressMongoStore` builds
connect-mongo's layout on it.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import NoScriptError, RedisError

from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.stores.base import (
    EPOCH,
    Changes,
    CorruptSession,
    CreateError,
    Cursor,
    Expired,
    IPFilter,
    SessionRecord,
    Store,
    StoreUnavailable,
    UpdateError,
    as_network,
    aware,
    filtered_page,
    guarded,
)
from django_sessionkit.stores.redis import connection as redis_client
from django_sessionkit.stores.redis import lock as redis_lock

logger = logging.getLogger("django_sessionkit")

T = TypeVar("T")

__all__ = ["COOKIE_KEY", "META_KEY", "RESERVED_KEYS", "ExpressRedisStore"]

#: express-session's cookie object in the stored JSON.
COOKIE_KEY = "cookie"
#: Our metadata, namespaced so that it never meets an application key.
META_KEY = "_sessionkit"
#: Top-level keys a Django view cannot use in this mode.
RESERVED_KEYS = frozenset({COOKIE_KEY, META_KEY})

#: express-session's ``Cookie#toJSON`` key order.
COOKIE_ORDER = (
    "originalMaxAge",
    "partitioned",
    "priority",
    "expires",
    "secure",
    "httpOnly",
    "domain",
    "path",
    "sameSite",
)

DEFAULT_PREFIX = "sess:"
DEFAULT_TTL = 86400  # connect-redis's ``ttl`` default, in seconds

#: OPTIONS this store understands on top of RedisStore's connection options.
OWN_OPTIONS: dict[str, tuple[type, ...]] = {
    "TTL": (int,),
    "DISABLE_TOUCH": (bool,),
    "DISABLE_TTL": (bool,),
}

#: Attempts of a read-modify-write before giving up (each one lost to a concurrent writer).
MAX_SAVE_ATTEMPTS = 20
SCAN_COUNT = 100  # connect-redis's ``scanCount`` default


# KEYS: the session key. ARGV: op ('create' | 'update'), SHA-1 of the value read,
# new value, TTL seconds ('' = no TTL). Returns 1 written, 2 deleted (TTL <= 0),
# 0 create refused (exists), -1 missing, -2 changed since read. A value already equal to the
# new one is this very write run a second time (a client's retry after a lost reply; the
# value carries its version and time): 1, and nothing is applied again.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[3] then return 1 end
if ARGV[1] == 'create' then
  if current then return 0 end
else
  if not current then return -1 end
  if redis.sha1hex(current) ~= ARGV[2] then return -2 end
end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
local ttl = tonumber(ARGV[4])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return 2
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ttl)
return 1
"""
CAS_SHA = hashlib.sha1(CAS_SCRIPT.encode()).hexdigest()


def _ms(moment: datetime) -> int:
    delta = aware(moment) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_ms(value: Any, default: datetime) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return EPOCH + timedelta(milliseconds=value)
    return default


def js_date(moment: datetime) -> str:
    """``Date#toJSON``: ``2026-11-24T08:57:30.736Z``."""
    moment = aware(moment).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_js_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ExpressLayout(Store):
    """What the connect-* layouts share: express-session's JSON (its ``cookie`` object, the
    application's keys, and ours under ``_sessionkit``), keys that are the session ids
    themselves, and listings over every session (connect-redis and connect-mongo keep no
    index: O(keyspace)). A subclass reads and writes its store: :meth:`_all`,
    :meth:`_delete_keys` and the contract's methods."""

    # --- JSON <-> record ------------------------------------------------------

    def _expires_on_the_browser_close(self, data: Mapping[str, Any]) -> bool:
        expiry = data.get("_session_expiry")
        if expiry is None:
            return conf.MAX_AGE is None
        return bool(expiry == 0)

    def _original_max_age(self, record: SessionRecord, now: datetime) -> int | None:
        """express's ``originalMaxAge`` (ms) for the lifetime the engine gave the record."""
        if self._expires_on_the_browser_close(record.data):
            return None
        expiry = record.data.get("_session_expiry")
        if isinstance(expiry, int) and not isinstance(expiry, bool):
            return expiry * 1000
        if expiry is None and conf.MAX_AGE is not None:
            return conf.MAX_AGE * 1000
        return max(0, round((record.expires_at - now).total_seconds() * 1000))

    def _new_cookie(self) -> dict[str, Any]:
        """The attributes express-session would store for a new session with these settings."""
        cookie: dict[str, Any] = {}
        if conf.PARTITIONED:
            cookie["partitioned"] = True
        if conf.PRIORITY:
            cookie["priority"] = conf.PRIORITY.lower()
        secure = conf.SECURE
        if secure is True:
            cookie["secure"] = True
        elif secure == "auto":
            # express stores 'auto' resolved; the store does not see the request, so it
            # stores the insecure answer (see docs/express-interop.md).
            cookie["secure"] = False
        cookie["httpOnly"] = conf.HTTP_ONLY
        if conf.DOMAIN:
            cookie["domain"] = conf.DOMAIN
        cookie["path"] = conf.PATH
        same_site = conf.SAME_SITE
        if same_site == "auto":
            same_site = "lax"
        if same_site:
            cookie["sameSite"] = same_site.lower()
        return cookie

    def _cookie(
        self, stored: Mapping[str, Any] | None, record: SessionRecord, now: datetime
    ) -> dict[str, Any]:
        """The ``cookie`` object to write: the stored attributes (express keeps the ones a
        session was created with), with ``originalMaxAge`` and ``expires`` from the record."""
        attributes = dict(stored) if isinstance(stored, Mapping) else self._new_cookie()
        browser_session = self._expires_on_the_browser_close(record.data)
        attributes["originalMaxAge"] = self._original_max_age(record, now)
        attributes["expires"] = None if browser_session else js_date(record.expires_at)
        always = ("originalMaxAge", "expires")  # express writes these two even when null
        ordered = {
            k: attributes[k]
            for k in COOKIE_ORDER
            if k in attributes and (attributes[k] is not None or k in always)
        }
        ordered.update({k: v for k, v in attributes.items() if k not in COOKIE_ORDER})
        return ordered

    def _value(
        self,
        stored: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        record: SessionRecord,
        version: int,
        now: datetime,
    ) -> dict[str, Any]:
        """The session as express-session stores it: ``cookie`` (the stored attributes, or a
        new session's), the application's keys, then ours under ``_sessionkit``."""
        reserved = sorted(RESERVED_KEYS & set(data))
        if reserved:
            raise ValueError(
                f"session keys {reserved} are reserved with COMPAT='express' "
                "(express-session's cookie object and sessionkit's metadata)"
            )
        cookie = self._cookie(stored.get(COOKIE_KEY) if stored else None, record, now)
        meta: dict[str, Any] = {
            "v": version,
            "c": _ms(record.created_at),
            "l": _ms(record.last_seen),
        }
        if record.user_id is not None:
            meta["u"] = record.user_id
        if record.ip is not None:
            meta["ip"] = record.ip
        if record.user_agent:
            meta["ua"] = record.user_agent
        return {COOKIE_KEY: cookie, **data, META_KEY: meta}

    @staticmethod
    def _parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested ~1000 levels
            raise CorruptSession(f"not JSON: {exc!r:.200}") from exc
        if not isinstance(value, dict) or not isinstance(value.get(COOKIE_KEY), dict):
            raise CorruptSession("not express-session's JSON (no 'cookie' object)")
        return value

    @staticmethod
    def _app_data(value: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in RESERVED_KEYS}

    def _from_value(
        self, value: Mapping[str, Any], expires_at: datetime, now: datetime
    ) -> SessionRecord:
        """The record of a parsed session (see :meth:`_parse`) that expires at ``expires_at``."""
        meta = value.get(META_KEY)
        meta = meta if isinstance(meta, dict) else {}
        data = self._app_data(value)
        # django.contrib.auth's key is the truth; "u" keeps what the engine recorded otherwise.
        user_id = data.get("_auth_user_id", meta.get("u"))
        version = meta.get("v")
        return SessionRecord(
            data=data,
            expires_at=expires_at,
            created_at=_from_ms(meta.get("c"), now),
            last_seen=_from_ms(meta.get("l"), now),
            user_id=None if user_id is None else str(user_id),
            ip=ip if isinstance(ip := meta.get("ip"), str) else None,
            user_agent=ua if isinstance(ua := meta.get("ua"), str) else "",
            version=version if isinstance(version, int) and not isinstance(version, bool) else 0,
        )

    # --- O(keyspace): no index ------------------------------------------------------

    def _all(self, user_id: str | None) -> builtins.list[tuple[str, SessionRecord]]:
        """Every live session (of one user), in no particular order."""
        raise NotImplementedError

    def _delete_keys(self, keys: builtins.list[str]) -> int:
        """Delete these sessions; how many existed."""
        raise NotImplementedError

    @guarded
    def count(self, *, user_id: str | None = None) -> int:
        return len(self._all(user_id))

    @guarded
    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> builtins.list[tuple[str, SessionRecord]]:
        """The filters and the cursor are applied to one SCAN of every session."""
        if limit <= 0:
            return []
        network = None if ip is None else as_network(ip)
        return filtered_page(
            self._all(user_id), signed_in=signed_in, network=network, after=after, limit=limit
        )

    def iter_all(self, *, batch_size: int = 500) -> Iterator[tuple[str, SessionRecord]]:
        """Every live session, most recently seen first: one SCAN, held in memory to sort
        (paging with a cursor would SCAN once per page)."""
        yield from self.list(limit=2**62)

    @guarded
    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return self._delete_keys([k for k, _ in self._all(user_id) if k != keep])

    @guarded
    def delete_all(self, *, keep: str | None = None) -> int:
        """Every session one SCAN finds, but ``keep``. (Not by ``created_at``: a session
        the Express app created carries none, and would read as created just now.)"""
        return self._delete_keys([k for k, _ in self._all(None) if k != keep])


class ExpressRedisStore(ExpressLayout):
    """connect-redis's layout; see the module docstring."""

    label = "express-redis"

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location, options)
        connection = self.connection_options(self.options)
        try:
            self.config = redis_client.parse(location, connection)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.prefix = self.config.prefix
        ttl = self.options.get("TTL") or DEFAULT_TTL  # connect-redis: 0 also means the default
        self.ttl = int(ttl)
        self.disable_touch = bool(self.options.get("DISABLE_TOUCH", False))
        self.disable_ttl = bool(self.options.get("DISABLE_TTL", False))

    # --- configuration ------------------------------------------------------

    @staticmethod
    def connection_options(options: Mapping[str, Any]) -> dict[str, Any]:
        """The options for ``redis_client`` (RedisStore's), with connect-redis's prefix."""
        connection = {k: v for k, v in options.items() if k not in OWN_OPTIONS}
        connection.setdefault("PREFIX", DEFAULT_PREFIX)
        return connection

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> builtins.list[str]:
        if not isinstance(options, Mapping):
            return [f"OPTIONS must be a dict, not {type(options).__name__}."]
        found = []
        for name, types in OWN_OPTIONS.items():
            if name not in options:
                continue
            value: Any = options[name]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                kind = " or ".join(t.__name__ for t in types)
                found.append(f"OPTIONS[{name!r}] must be {kind}, not {type(value).__name__}.")
            elif name == "TTL" and isinstance(value, int) and value < 0:
                found.append(f"OPTIONS['TTL'] must be a number of seconds >= 0, not {value!r}.")
        problems = redis_client.problems(location, cls.connection_options(options))
        return found + [
            p.replace("RedisStore option", "ExpressRedisStore option") for p in problems
        ]

    def describe(self) -> str:
        return redis_client.describe(self.location, self.connection_options(self.options))

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def lock_key(self, user_id: str) -> str:
        """The user's login lock (MAX_SESSIONS_POLICY = "refuse"): outside the prefix, where
        connect-redis's ``all()`` and ``length()`` would take it for a session."""
        return f"sessionkit:lock:{self.prefix}u:{user_id}"

    locks_users = True

    def user_locked(self, user_id: str, work: Callable[[], T]) -> T:
        """redis-py's lock (see :mod:`.redis.lock`); the async twin is the base class's."""
        return redis_lock.locked(self, self._client(), self.lock_key(user_id), user_id, work)

    # --- plumbing -------------------------------------------------------------

    def _client(self) -> Any:
        return redis_client.sync_client(self.config)

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.describe(), exc)

    def _cas(
        self, client: Any, redis_key: str, op: str, read_sha: str, value: str, ttl: str
    ) -> int:
        args = (op, read_sha, value, ttl)
        try:
            return int(client.evalsha(CAS_SHA, 1, redis_key, *args))
        except NoScriptError:
            return int(client.eval(CAS_SCRIPT, 1, redis_key, *args))

    # --- JSON <-> record ------------------------------------------------------

    def _ttl(self, cookie: Mapping[str, Any], now: datetime) -> str:
        """connect-redis's ``getTTL``, as the SET argument ('' = no TTL)."""
        if self.disable_ttl:
            return ""
        expires = parse_js_date(cookie.get("expires"))
        if expires is None:
            return str(self.ttl)
        return str(math.ceil((expires - now).total_seconds()))

    def _encode(
        self,
        stored: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        record: SessionRecord,
        version: int,
        now: datetime,
    ) -> tuple[str, str]:
        """The JSON to store and its TTL argument."""
        value = self._value(stored, data, record, version, now)
        return _dumps(value), self._ttl(value[COOKIE_KEY], now)

    def _record(self, key: str, text: Any, pttl: Any, now: datetime) -> SessionRecord | None:
        if text is None:
            return None
        try:
            value = self._parse(text)
        except CorruptSession as exc:
            logger.warning("Session %s… in %s is unreadable (%s).", key[:6], self.describe(), exc)
            return None
        cookie = value[COOKIE_KEY]
        if isinstance(pttl, int) and pttl > 0:
            expires_at = now + timedelta(milliseconds=pttl)
        elif isinstance(pttl, int) and pttl == -1:  # no TTL (DISABLE_TTL): the JSON's expiry
            expires_at = parse_js_date(cookie.get("expires")) or now + timedelta(seconds=self.ttl)
        else:  # -2: expired between GET and PTTL
            return None
        return self._from_value(value, expires_at, now)

    # --- the contract -----------------------------------------------------------

    @guarded
    def load(self, key: str) -> SessionRecord | None:
        redis_key = self.redis_key(key)
        try:
            pipe = self._client().pipeline(transaction=False)
            pipe.get(redis_key)
            pipe.pttl(redis_key)
            text, pttl = pipe.execute()
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return self._record(key, text, pttl, _now())

    @guarded
    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        redis_key = self.redis_key(key)
        client = self._client()
        try:
            if must_create:
                now = _now()
                value, ttl = self._encode(None, record.data, record, 1, now)
                if self._cas(client, redis_key, "create", "", value, ttl) == 0:
                    raise CreateError(f"a session with key {key[:6]}… already exists")
                return record.with_data(record.data, 1)
            for _attempt in range(MAX_SAVE_ATTEMPTS):
                text = client.get(redis_key)
                if text is None:
                    raise UpdateError(f"session {key[:6]}… no longer exists")
                try:
                    stored = self._parse(text)
                except CorruptSession as exc:
                    raise UpdateError(f"session {key[:6]}… is unreadable: {exc}") from exc
                current = self._app_data(stored)
                data = dict(record.data) if changes is None else changes.apply(current)
                meta = stored.get(META_KEY)
                previous = meta.get("v") if isinstance(meta, dict) else None
                version = (previous if isinstance(previous, int) else 0) + 1
                now = _now()
                value, ttl = self._encode(stored, data, record, version, now)
                status = self._cas(client, redis_key, "update", _sha1(text), value, ttl)
                if status == -1:
                    raise UpdateError(f"session {key[:6]}… no longer exists")
                if status in (1, 2):
                    merged = record.data if data == record.data else data
                    return record.with_data(merged, version)
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        raise self._unavailable(
            RuntimeError(
                f"session {key[:6]}… kept changing; gave up after {MAX_SAVE_ATTEMPTS} attempts"
            )
        )

    @guarded
    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        """connect-redis's touch: ``EXPIRE`` only. ``last_seen`` is not stored (it would
        need the JSON rewritten); the next save records it."""
        redis_key = self.redis_key(key)
        try:
            client = self._client()
            if self.disable_touch or self.disable_ttl:
                return bool(client.exists(redis_key))
            ttl = math.ceil((expires_at - _now()).total_seconds())
            if ttl <= 0:  # as connect-redis: an expired session is deleted, not kept
                client.delete(redis_key)
                return False
            return bool(client.expire(redis_key, ttl))
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    @guarded
    def delete(self, key: str) -> None:
        try:
            self._client().delete(self.redis_key(key))
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    @guarded
    def exists(self, key: str) -> bool:
        try:
            return bool(self._client().exists(self.redis_key(key)))
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    # --- O(keyspace): connect-redis keeps no index ----------------------------------

    def _scan(
        self, batch_size: int = SCAN_COUNT
    ) -> Iterator[builtins.list[tuple[str, SessionRecord]]]:
        """Every session under the prefix, in batches (SCAN, then GET+PTTL per key)."""
        client = self._client()
        pattern = _glob_escape(self.prefix) + "*"
        batch: builtins.list[str] = []
        try:
            for redis_key in client.scan_iter(match=pattern, count=max(batch_size, 1)):
                batch.append(redis_key)
                if len(batch) >= batch_size:
                    yield self._read_many(client, batch)
                    batch = []
            if batch:
                yield self._read_many(client, batch)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _read_many(
        self, client: Any, redis_keys: builtins.list[str]
    ) -> builtins.list[tuple[str, SessionRecord]]:
        pipe = client.pipeline(transaction=False)
        for redis_key in redis_keys:
            pipe.get(redis_key)
            pipe.pttl(redis_key)
        replies = pipe.execute(raise_on_error=False)
        now = _now()
        found = []
        for i, redis_key in enumerate(redis_keys):
            text, pttl = replies[2 * i], replies[2 * i + 1]
            if isinstance(text, Exception) or isinstance(pttl, Exception):
                continue  # not a string key: something else under the prefix
            key = redis_key[len(self.prefix) :]
            record = self._record(key, text, pttl, now)
            if record is not None:
                found.append((key, record))
        return found

    def _all(self, user_id: str | None) -> builtins.list[tuple[str, SessionRecord]]:
        found = [item for batch in self._scan() for item in batch]
        if user_id is not None:
            found = [(k, r) for k, r in found if r.user_id == user_id]
        return found

    def _delete_keys(self, keys: builtins.list[str], batch_size: int = 500) -> int:
        """DEL each key, ``batch_size`` to a pipeline; how many existed."""
        deleted = 0
        try:
            for first in range(0, len(keys), batch_size):
                pipe = self._client().pipeline(transaction=False)
                for key in keys[first : first + batch_size]:
                    pipe.delete(self.redis_key(key))
                deleted += sum(int(n) for n in pipe.execute())
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return deleted

    def purge_expired(
        self, batch_size: int = 1000, *, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        """Nothing to do: Redis expires the keys itself, and there is no index to prune."""
        return iter(())

    def expiry_unreported(self) -> str | None:
        return (
            "connect-redis's layout keeps no index: Redis drops expired sessions by itself and "
            "nothing can tell which (only keyspace notifications, which Redis does not "
            "deliver reliably). Logouts and revocations are reported; use the sessionkit "
            "layout (RedisStore) for expiry events."
        )

    def count_expired(self) -> int | None:
        return 0

    def close(self) -> None:
        redis_client.forget(self.config)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
