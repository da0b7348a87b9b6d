"""RedisStore: sessions in Redis or Valkey — standalone, behind Sentinel, or in a Cluster.

Configured like Django's ``CACHES``::

    SESSIONKIT = {"STORE": {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"PREFIX": "myapp:"},
    }}

``LOCATION``
    standalone: one ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.
    cluster: a list of startup nodes (``"redis://host:port"`` or ``"host:port"``).
    sentinel: optional ``redis://[user:password@]SERVICE_NAME/DB`` giving the master's
    name, credentials and database.

``OPTIONS`` (all optional except where a mode needs them)
    ``PREFIX`` (``"sessionkit:"``) — every key starts with it.
    ``MODE`` — ``"standalone"``, ``"sentinel"`` or ``"cluster"``; inferred when unset:
    ``SENTINELS`` given → sentinel, ``LOCATION`` a list → cluster, else standalone.
    ``SENTINELS`` — list of ``(host, port)`` or ``"host:port"``; ``SERVICE_NAME``;
    ``SENTINEL_KWARGS`` — dict for the connections to the sentinels (e.g. ``{"password": …}``).
    ``SOCKET_TIMEOUT`` (0.5), ``SOCKET_CONNECT_TIMEOUT`` (0.5) — seconds.
    ``RETRY_ATTEMPTS`` (3), ``RETRY_BACKOFF_BASE`` (0.01), ``RETRY_BACKOFF_CAP`` (0.5) —
    retries of a command after a dropped connection (not after a timeout), exponential
    backoff with jitter.
    ``MAX_CONNECTIONS``, ``HEALTH_CHECK_INTERVAL``.
    ``SSL_CA_CERTS``, ``SSL_CERTFILE``, ``SSL_KEYFILE``, ``SSL_CERT_REQS``
    (``"required"``/``"optional"``/``"none"``), ``SSL_CHECK_HOSTNAME`` — for ``rediss://``.
    ``CONNECTION_POOL_KWARGS`` — passed as they are to redis-py (lower-case names).

Key layout: see :mod:`.keys`.

* ``Ps:K`` — a hash: ``v`` version, ``e`` expires, ``c`` created, ``l`` last seen
  (microseconds since the epoch), ``u`` user id, ``ip``, ``ua``, ``t`` the tokens of the
  last saves (a replayed save is not applied twice), and one field
  ``d:NAME`` per session key holding that value's JSON. TTL = the session's expiry.
* ``P{idx}:exp`` / ``P{idx}:seen`` — sorted sets of every session, scored by expiry and by
  minus last-seen: count in O(log n), pages in O(log n + page). One hash tag, one slot.
* ``P{idx}:seen:i`` / ``P{idx}:seen:a`` — the signed-in and the anonymous sessions, scored
  like ``seen``; ``P{idx}:ip:A:i`` / ``P{idx}:ip:A:a`` — the same, from address code ``A``
  (:func:`ip_code`); ``P{idx}:ips`` — the codes of the addresses with sessions, all scored 0,
  so that a network is a ``ZRANGEBYLEX`` range; ``P{idx}:where`` — a hash, session key →
  who, address code and user id, which tells a touch, a delete or a prune where a session
  is indexed, and the purge whose session expired.
* ``Pu:USER`` — a set of the user's session keys, for "sign out everywhere"; members are
  checked against the record when read, and swept by ``purge_expired``.

Sessions saved by a version without the who- and address sets are in ``exp`` and ``seen``
only: listed unfiltered, and placed in the other sets at their next save, or at their next
touch (two more round trips, once).

Round trips: ``load`` 1, ``save`` 1, ``touch`` 1, ``delete`` 1 (on a Cluster one
pipeline, whose commands go to their nodes in parallel). Saves and touches run a Lua script on
the session key that checks existence and version and writes in place; because data is kept
field by field, a concurrent save is merged inside the script (no retry round trips). On
standalone and Sentinel the script also updates the indexes; on a Cluster the index commands
travel in the same pipeline and are undone in the rare case the script refuses the write.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ResponseError

from django_sessionkit.stores.base import (
    Changes,
    CreateError,
    SessionRecord,
    UpdateError,
    from_us,
    to_us,
)
from django_sessionkit.stores.redis import connection, lock
from django_sessionkit.stores.redis.keys import (
    DATA,
    Shards,
    counted_names,
    counted_pairs,
    meta_fields,
    ms_ceiling,
    now_us,
    save_token,
    to_json,
    where,
)
from django_sessionkit.stores.redis.listing import Listing
from django_sessionkit.stores.redis.plans import Call, Plan, Results, Steps, eval_call
from django_sessionkit.stores.redis.scripts import INDEX, SAVE, TOUCH

logger = logging.getLogger("django_sessionkit")

__all__ = ["RedisStore"]

T = TypeVar("T")


class RedisStore(Listing):
    label = "redis"

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location, options)
        try:
            self.config = connection.parse(location, self.options)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.prefix = self.config.prefix
        # Outside a Cluster every key is reachable from one script: indexes move with the data.
        self.inline_index = self.config.mode != "cluster"
        self.shards = Shards(self.prefix, int(self.config.option("INDEX_SHARDS")))
        # The single index of earlier releases (the only one with INDEX_SHARDS = 1).
        self.index_base = self.shards.single
        self.exp_index = self.index_base + "exp"
        self.seen_index = self.index_base + "seen"
        # Whether sessions may still be indexed in that single index (see _legacy_pending).
        self._draining = self.shards.legacy is not None
        self._recheck_at = 0.0

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> builtins.list[str]:
        return connection.problems(location, options or {})

    def describe(self) -> str:
        return connection.describe(self.location, self.options)

    # --- key names --------------------------------------------------------

    def session_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def lock_key(self, user_id: str) -> str:
        """The user's login lock (MAX_SESSIONS_POLICY = "refuse"), out of ``Pu:*``."""
        return f"{self.prefix}lock:u:{user_id}"

    # --- the per-user login lock (see .lock) --------------------------------

    locks_users = True

    def user_locked(self, user_id: str, work: Callable[[], T]) -> T:
        client = connection.sync_client(self.config)
        return lock.locked(self, client, self.lock_key(user_id), user_id, work)

    async def auser_locked(self, user_id: str, work: Callable[[], Awaitable[T]]) -> T:
        client = connection.async_client(self.config)
        return await lock.alocked(self, client, self.lock_key(user_id), user_id, work)

    # --- records ----------------------------------------------------------

    def _decode(self, key: str, fields: Any) -> SessionRecord | None:
        if isinstance(fields, ResponseError):
            logger.warning(
                "Session %s… in %s is unreadable (%s).", key[:12], self.describe(), fields
            )
            return None
        if not fields:
            return None
        try:
            expires_at = from_us(int(fields["e"]))
            record = SessionRecord(
                data={
                    name[len(DATA) :]: json.loads(value)
                    for name, value in fields.items()
                    if name.startswith(DATA)
                },
                expires_at=expires_at,
                created_at=from_us(int(fields["c"])),
                last_seen=from_us(int(fields["l"])),
                user_id=fields.get("u"),
                ip=fields.get("ip"),
                user_agent=fields.get("ua", ""),
                version=int(fields["v"]),
            )
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            logger.warning(
                "Session %s… in %s is unreadable (%s: %s).",
                key[:12],
                self.describe(),
                type(exc).__name__,
                exc,
            )
            return None
        if expires_at <= datetime.now(timezone.utc):
            return None
        return record

    # --- the contract, written once as steps (sync and async drive them) ---

    def _load_steps(self, key: str) -> Steps[SessionRecord | None]:
        (fields,) = yield [Call(("HGETALL", self.session_key(key)))]
        return self._decode(key, fields)

    def _save_steps(
        self, key: str, record: SessionRecord, must_create: bool, changes: Changes | None
    ) -> Steps[SessionRecord]:
        redis_key = self.session_key(key)
        data = record.data
        incr: builtins.list[str] = []
        if changes is None:  # the whole data
            to_set = [(DATA + name, to_json(value)) for name, value in data.items()]
            removed: builtins.list[str] = []
        else:
            to_set = [(DATA + name, to_json(value)) for name, value in changes.set.items()]
            removed = [DATA + name for name in changes.removed]
            for name, delta in changes.increments.items():
                incr += [DATA + name, to_json(data[name]), to_json(delta)]
        # Metadata still as the request loaded it is left out: fewer fields for Redis to write.
        loaded = (
            {} if changes is None or changes.loaded is None else dict(meta_fields(changes.loaded))
        )
        fields = [
            (name, v) for name, v in meta_fields(record) if name not in loaded or loaded[name] != v
        ]
        meta = [(name, value) for name, value in fields if value is not None]
        unset = [name for name, value in fields if value is None]
        op = "create" if must_create else ("replace" if changes is None else "merge")
        exp_score, seen_score = str(to_us(record.expires_at)), str(-to_us(record.last_seen))
        place = where(record.user_id, record.ip, to_us(record.created_at))
        base = self.shards.base_of(key)
        args = [op, str(record.version), str(ms_ceiling(record.expires_at)), key]
        args += [exp_score, seen_score, base, place, save_token()]
        args.append(self.shards.legacy or "")
        args += (
            counted_pairs(meta)
            + counted_names(unset)
            + counted_pairs(to_set)
            + counted_names(removed)
        )
        args += [str(len(incr) // 3), *incr]
        user_key = None if record.user_id is None else self.user_key(str(record.user_id))
        legacy = False
        if self.inline_index:
            keys = [redis_key, base + "exp"]
            keys += [] if user_key is None else [user_key]
            plan = [eval_call(SAVE, keys, args)]
        else:
            legacy = self._legacy_pending()
            # While the single index may hold it, a session is placed in its shard whatever
            # it finds there ('set'); else only a new one (nx) or one already there (xx).
            only = "set" if legacy else ("nx" if must_create else "xx")
            plan = [
                eval_call(SAVE, [redis_key], args),
                self._index_call(only, key, exp_score, seen_score, place),
                Call(("SADD", user_key, key)) if user_key is not None else Call(("PING",)),
            ]
            if legacy:
                plan.append(self._drain_call([key]))
        results = yield plan
        if legacy:
            self._drained(results[-1])
        status, version, conflict, *merged = self._ok(results[0])
        if status != 1 and not self.inline_index:
            yield self._undo_index(key, user_key, results, created=status == 0)
        if status == 0:
            raise CreateError(f"a session with key {key[:12]}… already exists")
        if status == -1:
            raise UpdateError(f"session {key[:12]}… no longer exists")
        if conflict:
            data = {
                name[len(DATA) :]: json.loads(value)
                for name, value in zip(merged[::2], merged[1::2], strict=True)
            }
        return record.with_data(data, int(version))

    def _index_call(self, mode: str, key: str, exp_score: str, seen_score: str, place: str) -> Call:
        """The INDEX script placing one session in its shard (``index_lib.lua``'s ``place``)."""
        base = self.shards.base_of(key)
        args = [base, mode, key, exp_score, seen_score, place]
        return eval_call(INDEX, [base + "exp"], args)

    def _undo_index(
        self, key: str, user_key: str | None, results: Results, *, created: bool
    ) -> Plan:
        """Take back the index entries a refused Cluster save added."""
        undo = []
        if not created or results[1] == 1:
            undo += self._unindex_calls([key], legacy=False)
        if user_key is not None and (not created or results[2] == 1):
            undo.append(Call(("SREM", user_key, key)))
        return undo or [Call(("PING",))]

    def _touch_steps(self, key: str, expires_at: datetime, last_seen: datetime) -> Steps[bool]:
        exp_score, seen_score = str(to_us(expires_at)), str(-to_us(last_seen))
        args = [str(now_us()), exp_score, str(to_us(last_seen)), str(ms_ceiling(expires_at))]
        base = self.shards.base_of(key)
        args += [key, seen_score, base, self.shards.legacy or ""]
        redis_key = self.session_key(key)
        legacy = False
        if self.inline_index:
            plan = [eval_call(TOUCH, [redis_key, base + "exp"], args)]
        else:
            legacy = self._legacy_pending()
            plan = [
                eval_call(TOUCH, [redis_key], args),
                self._index_call("set" if legacy else "xx", key, exp_score, seen_score, ""),
            ]
            if legacy:
                plan.append(self._drain_call([key]))
        results = yield plan
        if legacy:
            self._drained(results[-1])
        touched = self._ok(results[0])
        placed = touched if self.inline_index else self._ok(results[1])
        if not touched and not self.inline_index:
            # Missing or expired, and the pipeline's index call may have moved its entry on.
            # While session_ended is listened to, an expired one waits for the purge that
            # reports it: its entry is put back as expired now, rather than dropped.
            if self._keeps_expired():
                yield [self._index_call("xx", key, str(now_us()), seen_score, "")]
            else:
                yield self._unindex_calls([key], legacy=False)
        elif touched and placed == 2:
            # Saved by a version before the who- and per-address indexes: place it now (once).
            yield from self._reindex_steps(key, exp_score, seen_score)
        return bool(touched)

    def _reindex_steps(self, key: str, exp_score: str, seen_score: str) -> Steps[None]:
        (fields,) = yield [Call(("HMGET", self.session_key(key), "u", "ip", "c"))]
        if isinstance(fields, Exception):
            return
        yield [self._index_call("xx", key, exp_score, seen_score, where(*fields))]

    def _delete_steps(self, key: str) -> Steps[None]:
        # The user's set keeps the member; it is checked whenever read and swept by purge.
        results = yield [Call(("DEL", self.session_key(key))), *self._unindex_calls([key])]
        for result in results:
            self._ok(result)

    def _exists_steps(self, key: str) -> Steps[bool]:
        (expires,) = yield [Call(("HGET", self.session_key(key), "e"))]
        if isinstance(expires, ResponseError) or expires is None:
            return False
        try:
            return int(expires) > now_us()
        except ValueError:
            return False

    # --- connections (the Store interface itself: stores.steps.StepStore) ----

    def close(self) -> None:
        connection.forget(self.config)

    async def aclose(self) -> None:
        """Close this event loop's connections of this store."""
        await connection.aforget(self.config)
