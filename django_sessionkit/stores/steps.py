"""Stores whose operations are written once, as steps, and run sync or async.

A step method (``_load_steps``, ``_save_steps``…) is a generator: it yields what one round
trip sends and receives the store's answer, so the same code serves the sync API (driven
by :meth:`StepStore._drive`) and the async one (:meth:`StepStore._adrive`). The Redis and
MongoDB stores are built this way; they write the steps and the two drivers, and this class
writes the Store interface over them once.

``admin=True`` tells a driver that the call is the admin's or a command's (listing,
counting, ending many sessions), which may be allowed to wait longer than a request.
"""

from __future__ import annotations

import builtins
from collections.abc import Generator
from datetime import datetime
from typing import Any, TypeVar

from django_sessionkit.stores.base import Changes, Cursor, IPFilter, SessionRecord, Store

T = TypeVar("T")
Steps = Generator[Any, Any, T]
Items = builtins.list[tuple[str, SessionRecord]]


class StepStore(Store):
    """The single-session half of the Store interface, over steps."""

    # --- what a store of this kind writes -------------------------------------------

    def _drive(self, steps: Steps[T], *, admin: bool = False) -> T:
        raise NotImplementedError

    async def _adrive(self, steps: Steps[T], *, admin: bool = False) -> T:
        raise NotImplementedError

    def _load_steps(self, key: str) -> Steps[SessionRecord | None]:
        raise NotImplementedError

    def _save_steps(
        self, key: str, record: SessionRecord, must_create: bool, changes: Changes | None
    ) -> Steps[SessionRecord]:
        raise NotImplementedError

    def _touch_steps(self, key: str, expires_at: datetime, last_seen: datetime) -> Steps[bool]:
        raise NotImplementedError

    def _delete_steps(self, key: str) -> Steps[None]:
        raise NotImplementedError

    def _exists_steps(self, key: str) -> Steps[bool]:
        raise NotImplementedError

    # --- the Store interface over them ------------------------------------------------

    def load(self, key: str) -> SessionRecord | None:
        return self._drive(self._load_steps(key))

    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return self._drive(self._save_steps(key, record, must_create, changes))

    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return self._drive(self._touch_steps(key, expires_at, last_seen))

    def delete(self, key: str) -> None:
        self._drive(self._delete_steps(key))

    def exists(self, key: str) -> bool:
        return self._drive(self._exists_steps(key))

    async def aload(self, key: str) -> SessionRecord | None:
        return await self._adrive(self._load_steps(key))

    async def asave(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return await self._adrive(self._save_steps(key, record, must_create, changes))

    async def atouch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return await self._adrive(self._touch_steps(key, expires_at, last_seen))

    async def adelete(self, key: str) -> None:
        await self._adrive(self._delete_steps(key))

    async def aexists(self, key: str) -> bool:
        return await self._adrive(self._exists_steps(key))


class StepListing(StepStore):
    """The many-session half (listing, counting, ending many) written as steps too."""

    def _count_steps(self, user_id: str | None) -> Steps[int]:
        raise NotImplementedError

    def _list_steps(
        self,
        user_id: str | None,
        signed_in: bool | None,
        ip: IPFilter | None,
        after: Cursor | None,
        limit: int,
    ) -> Steps[Items]:
        raise NotImplementedError

    def _delete_all_steps(self, keep: str | None) -> Steps[int]:
        raise NotImplementedError

    def _delete_for_user_steps(self, user_id: str, keep: str | None) -> Steps[int]:
        raise NotImplementedError

    def count(self, *, user_id: str | None = None) -> int:
        return self._drive(self._count_steps(user_id), admin=True)

    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> Items:
        return self._drive(self._list_steps(user_id, signed_in, ip, after, limit), admin=True)

    def delete_all(self, *, keep: str | None = None) -> int:
        return self._drive(self._delete_all_steps(keep), admin=True)

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return self._drive(self._delete_for_user_steps(user_id, keep), admin=True)

    async def acount(self, *, user_id: str | None = None) -> int:
        return await self._adrive(self._count_steps(user_id), admin=True)

    async def alist(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> Items:
        steps = self._list_steps(user_id, signed_in, ip, after, limit)
        return await self._adrive(steps, admin=True)

    async def adelete_all(self, *, keep: str | None = None) -> int:
        return await self._adrive(self._delete_all_steps(keep), admin=True)

    async def adelete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._adrive(self._delete_for_user_steps(user_id, keep), admin=True)
