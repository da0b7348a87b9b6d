"""Reading the live sessions of Django's own engines, batch by batch, for ``importsessions``.

- ``db`` and ``cached_db`` keep every session in the ``django_session`` table
  (``cached_db`` only caches it), signed by ``SessionBase.encode``. We read the
  table with SQL, so ``django.contrib.sessions`` need not be installed, and
  verify and decode each row exactly as ``SessionBase.decode`` does.
- ``cache`` keeps each session, unsigned, under
  ``django.contrib.sessions.cache<session key>`` in ``SESSION_CACHE_ALIAS``.
  Finding them needs a cache that can list its keys: Django's ``RedisCache``
  (SCAN) or django-redis (``iter_keys``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, Protocol

from django.conf import settings
from django.contrib.sessions.backends.cache import KEY_PREFIX as CACHE_KEY_PREFIX
from django.contrib.sessions.backends.db import SessionStore as DjangoDbSession
from django.core import signing
from django.core.cache import InvalidCacheBackendError, caches
from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

TABLE = "django_session"


@dataclasses.dataclass
class LegacySession:
    """One session of Django's engines; ``data`` is ``None`` when it did not decode."""

    session_key: str
    expires_at: datetime
    data: dict[str, Any] | None
    problem: str = ""


class Source(Protocol):
    label: str

    def check(self) -> None:
        """Raise CommandError when this source cannot be read at all."""

    def batches(self, size: int) -> Iterator[list[LegacySession]]:
        """Every live session, ``size`` at a time."""


def django_signed(session_key: str, expires_at: datetime, text: str) -> LegacySession:
    """Verify and decode ``session_data`` as ``SessionBase.decode`` does, keeping the reason."""
    decoder = DjangoDbSession()
    try:
        data = signing.loads(text, salt=decoder.key_salt, serializer=decoder.serializer)
    except signing.BadSignature:
        problem = "bad signature (not Django session data, or another SECRET_KEY)"
        return LegacySession(session_key, expires_at, None, problem)
    except Exception as exc:  # the serializer's own errors, as decode() swallows them
        return LegacySession(session_key, expires_at, None, f"undecodable ({exc})")
    if not isinstance(data, dict):
        return LegacySession(session_key, expires_at, None, "not a dict")
    return LegacySession(session_key, expires_at, data)


def aware(value: Any) -> datetime:
    """A datetime column read by raw SQL, as an aware datetime."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise CommandError(f"expire_date {value!r} in {TABLE} is not a date-time")
    if timezone.is_naive(moment):  # stored in UTC with USE_TZ, in local time without
        zone = dt_timezone.utc if settings.USE_TZ else timezone.get_default_timezone()
        moment = timezone.make_aware(moment, zone)
    return moment


class DatabaseSource:
    """The ``django_session`` table of ``db`` / ``cached_db``, read by primary key ranges."""

    def __init__(self, alias: str, engine: str) -> None:
        self.alias = alias
        self.label = f"table {TABLE} in database {alias!r} (Django's {engine} engine)"

    def check(self) -> None:
        if self.alias not in connections.settings:
            known = ", ".join(sorted(connections.settings))
            raise CommandError(f"--database {self.alias!r} is not in DATABASES; accepted: {known}.")
        connection = connections[self.alias]
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        if TABLE not in tables:
            raise CommandError(
                f"Database {self.alias!r} has no {TABLE} table, so there is nothing to import "
                "from Django's db or cached_db engine. Name the database that holds it with "
                "--database, or use --from cache for Django's cache engine."
            )

    def batches(self, size: int) -> Iterator[list[LegacySession]]:
        connection = connections[self.alias]
        quote = connection.ops.quote_name
        sql = (
            f"SELECT {quote('session_key')}, {quote('session_data')}, {quote('expire_date')} "
            f"FROM {quote(TABLE)} WHERE {quote('expire_date')} > %s "
            f"AND {quote('session_key')} > %s ORDER BY {quote('session_key')} LIMIT %s"
        )
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        after = ""
        while True:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql, [now, after, size])
                    rows = cursor.fetchall()
            except DatabaseError as exc:
                raise CommandError(
                    f"Could not read {self.label}: {exc}. It must have Django's columns "
                    "session_key, session_data and expire_date."
                ) from exc
            if not rows:
                return
            yield [django_signed(str(k), aware(expires), str(text)) for k, text, expires in rows]
            after = rows[-1][0]


class CacheSource:
    """Django's ``cache`` engine: every ``django.contrib.sessions.cache*`` key of one cache."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.label = f"cache {alias!r} (Django's cache engine)"

    def check(self) -> None:
        try:
            cache = caches[self.alias]
        except InvalidCacheBackendError:
            known = ", ".join(sorted(settings.CACHES))
            raise CommandError(
                f"--cache {self.alias!r} is not in CACHES; accepted: {known}."
            ) from None
        if not (hasattr(cache, "iter_keys") or _redis_client(cache) is not None):
            backend = f"{type(cache).__module__}.{type(cache).__name__}"
            raise CommandError(
                f"Cache {self.alias!r} ({backend}) cannot list its keys, so its sessions cannot "
                "be found and imported. Accepted: django.core.cache.backends.redis.RedisCache "
                "or django-redis. Otherwise switch Django to the cached_db engine first, let "
                "sessions be saved to the database, and import --from cached_db."
            )

    def batches(self, size: int) -> Iterator[list[LegacySession]]:
        cache = caches[self.alias]
        if hasattr(cache, "iter_keys"):  # django-redis: keys come back without prefix/version
            yield from _chunks(self._django_redis(cache, size), size)
        else:
            yield from _chunks(self._redis_cache(cache, size), size)

    def _django_redis(self, cache: Any, size: int) -> Iterator[LegacySession]:
        for key in cache.iter_keys(CACHE_KEY_PREFIX + "*", itersize=size):
            value, ttl = cache.get(key), cache.ttl(key)
            if value is not None and ttl != 0:
                yield self._session(key[len(CACHE_KEY_PREFIX) :], value, ttl)

    def _redis_cache(self, cache: Any, size: int) -> Iterator[LegacySession]:
        client = _redis_client(cache)
        assert client is not None
        prefix = cache.make_key(CACHE_KEY_PREFIX)
        pattern = _glob_escape(prefix) + "*"
        keys: list[bytes] = []
        for raw in client.scan_iter(match=pattern, count=size):
            keys.append(raw)
            if len(keys) >= size:
                yield from self._fetch(cache, client, prefix, keys)
                keys = []
        yield from self._fetch(cache, client, prefix, keys)

    def _fetch(
        self, cache: Any, client: Any, prefix: str, keys: list[bytes]
    ) -> Iterator[LegacySession]:
        if not keys:
            return
        pipe = client.pipeline(transaction=False)
        for raw in keys:
            pipe.get(raw)
            pipe.pttl(raw)
        replies = pipe.execute()
        for raw, value, pttl in zip(keys, replies[::2], replies[1::2], strict=True):
            if value is None or pttl == -2:
                continue  # expired between SCAN and GET
            session_key = raw.decode()[len(prefix) :]
            try:
                loaded = cache._cache._serializer.loads(value)
            except Exception as exc:
                problem = f"undecodable ({exc})"
                yield LegacySession(session_key, timezone.now(), None, problem)
                continue
            yield self._session(session_key, loaded, None if pttl < 0 else pttl / 1000)

    def _session(self, session_key: str, value: Any, ttl: float | None) -> LegacySession:
        now = timezone.now()
        age = None if ttl is None or ttl < 0 else ttl
        expires_at = now + timedelta(seconds=settings.SESSION_COOKIE_AGE if age is None else age)
        if not isinstance(value, dict):
            problem = f"a {type(value).__name__}, not a session dict"
            return LegacySession(session_key, expires_at, None, problem)
        return LegacySession(session_key, expires_at, value)


def _redis_client(cache: Any) -> Any:
    """The primary's redis-py client of Django's own RedisCache, or None for other caches."""
    inner = getattr(cache, "_cache", None)
    get_client = getattr(inner, "get_client", None)
    if not callable(get_client) or not hasattr(inner, "_serializer"):
        return None
    return get_client(None, write=True)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _chunks(items: Iterator[LegacySession], size: int) -> Iterator[list[LegacySession]]:
    chunk: list[LegacySession] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def source_for(kind: str, *, database: str, cache: str) -> Source:
    if kind in ("db", "cached_db"):
        return DatabaseSource(database, kind)
    if kind == "cache":
        return CacheSource(cache)
    raise CommandError(
        f"--from {kind!r} is not accepted: use db, cached_db (both read the django_session "
        "table) or cache (Django's cache engine on a Redis cache)."
    )
