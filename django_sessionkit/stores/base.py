"""The one storage interface every sessionkit store implements.

A store never sees a raw session id. The engine hands it a *key*: the SHA-256
hex digest of the id (``COMPAT="express"`` is the one exception, where the
key is the id itself because connect-redis's layout demands it).

Every method has an async twin with an ``a`` prefix. The defaults here run the
sync method in a thread; a store with a native async client overrides them.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import CreateError, UpdateError

__all__ = [
    "Changes",
    "CorruptSession",
    "CreateError",
    "SessionRecord",
    "Store",
    "StoreUnavailable",
    "UpdateError",
]


class CorruptSession(ValueError):
    """Stored session data that cannot be decoded; the session is treated as missing."""


def encode_data(data: Mapping[str, Any]) -> str:
    """Serialise session data to compact JSON (the format every store keeps)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode_data(text: str | bytes) -> dict[str, Any]:
    """Parse stored session data; raise :class:`CorruptSession` if it is not a JSON object."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptSession(f"session data is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptSession(f"session data is a JSON {type(data).__name__}, not an object")
    return data


class StoreUnavailable(Exception):
    """The store could not be reached or answered with an error.

    The middleware turns it into a 503 response with ``Retry-After`` and one
    log line; it never falls back to a fresh, empty session.
    """

    def __init__(self, store: str, error: BaseException | str) -> None:
        self.store = store
        self.error = error
        super().__init__(f"session store {store} is unavailable: {error}")


@dataclasses.dataclass
class Changes:
    """What one request did to a session's data.

    ``set``: keys set or changed (their new values); ``removed``: keys deleted;
    ``increments``: numeric keys changed by ``SessionStore.incr()``, as deltas, so
    that a save merged onto a newer copy adds to the newer count instead of
    overwriting it. A key is in at most one of the three.
    """

    set: dict[str, Any] = dataclasses.field(default_factory=dict)
    removed: builtins.set[str] = dataclasses.field(default_factory=builtins.set)
    increments: dict[str, int | float] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.set or self.removed or self.increments)

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``data`` with these changes applied on top."""
        merged = {k: v for k, v in data.items() if k not in self.removed}
        merged.update(self.set)
        for key, delta in self.increments.items():
            current = merged.get(key)
            base = (
                current
                if isinstance(current, (int, float)) and not isinstance(current, bool)
                else 0
            )
            merged[key] = base + delta
        return merged


@dataclasses.dataclass
class SessionRecord:
    """A session's data and what we know about it.

    ``version`` counts the writes of ``data``; a save names the version it
    started from so that concurrent saves can be merged instead of lost.
    """

    data: dict[str, Any]
    expires_at: datetime
    created_at: datetime
    last_seen: datetime
    user_id: str | None = None
    ip: str | None = None
    user_agent: str = ""
    version: int = 0

    def with_data(self, data: dict[str, Any], version: int) -> SessionRecord:
        return dataclasses.replace(self, data=data, version=version)


class Store:
    """Base class of the storage backends.

    Subclasses implement the sync methods; :meth:`check` validates the
    configuration for the system checks (``sessionkit.E…``), so a wrong
    ``STORE`` fails at start-up rather than at the first request.
    """

    #: Human-readable name used in logs and errors.
    label = "store"

    #: True when :meth:`find_by_prefix` uses an index instead of reading every session.
    indexes_key_prefixes = False

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        self.location = location
        self.options = dict(options or {})

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> list[str]:
        """Return a message for each problem in this configuration (empty if fine)."""
        return []

    def describe(self) -> str:
        """Where this store keeps its data, with any password hidden."""
        return f"{type(self).__name__}({self.location!r})"

    # --- the contract -----------------------------------------------------

    def load(self, key: str) -> SessionRecord | None:
        """The live record for ``key``, or ``None`` when missing or expired."""
        raise NotImplementedError

    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        """Write ``record`` under ``key`` and return what was stored.

        ``must_create=True`` inserts; an existing key raises :class:`CreateError`
        and is left untouched. Otherwise the record must exist (else
        :class:`UpdateError`: a session deleted meanwhile is never re-created).
        When the stored ``version`` is no longer ``record.version``, another
        request saved in between: the store applies ``changes`` (the keys this
        request set, removed or incremented) on top of the newer data, atomically,
        so neither save's keys are lost.
        ``changes=None`` means "this request replaces the whole data".
        The returned record carries the new version.
        """
        raise NotImplementedError

    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        """Move expiry and last activity without rewriting the data.

        Returns ``False`` (and changes nothing) when the session is missing or
        already expired.
        """
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return self.load(key) is not None

    def count(self, *, user_id: str | None = None) -> int:
        """Live sessions, optionally only those of one user."""
        raise NotImplementedError

    def list(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 50
    ) -> list[tuple[str, SessionRecord]]:
        """One page of live sessions, most recently seen first."""
        raise NotImplementedError

    def iter_all(self, *, batch_size: int = 500) -> Iterator[tuple[str, SessionRecord]]:
        """Every live session, fetched ``batch_size`` at a time."""
        offset = 0
        while True:
            page = self.list(offset=offset, limit=batch_size)
            yield from page
            if len(page) < batch_size:
                return
            offset += batch_size

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of one user except ``keep``; return how many."""
        raise NotImplementedError

    def find_by_prefix(
        self, prefix: str, limit: int = 2
    ) -> builtins.list[tuple[str, SessionRecord]]:
        """Up to ``limit`` live sessions whose key starts with ``prefix`` (admin, commands).

        This default reads every session; stores with an ordered key index override it.
        """
        found = []
        for key, record in self.iter_all():
            if key.startswith(prefix):
                found.append((key, record))
                if len(found) >= limit:
                    break
        return found

    def estimate_count(self) -> int | None:
        """A cheap approximate number of sessions, or ``None`` when there is none."""
        return None

    def count_expired(self) -> int | None:
        """Expired sessions still held (for a purge's dry run), or ``None`` if unknown."""
        return None

    def purge_expired(self, batch_size: int = 1000) -> Iterator[int]:
        """Remove expired records in batches, yielding how many each batch removed."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (tests, shutdown)."""

    async def aclose(self) -> None:
        """Release the async connections of the running event loop."""

    # --- async twins ------------------------------------------------------

    async def aload(self, key: str) -> SessionRecord | None:
        return await sync_to_async(self.load)(key)

    async def asave(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return await sync_to_async(self.save)(key, record, must_create=must_create, changes=changes)

    async def atouch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return await sync_to_async(self.touch)(key, expires_at, last_seen)

    async def adelete(self, key: str) -> None:
        await sync_to_async(self.delete)(key)

    async def aexists(self, key: str) -> bool:
        return await sync_to_async(self.exists)(key)

    async def acount(self, *, user_id: str | None = None) -> int:
        return await sync_to_async(self.count)(user_id=user_id)

    async def alist(
        self, *, user_id: str | None = None, offset: int = 0, limit: int = 50
    ) -> builtins.list[tuple[str, SessionRecord]]:
        return await sync_to_async(self.list)(user_id=user_id, offset=offset, limit=limit)

    async def adelete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_for_user)(user_id, keep=keep)
