"""The per-user login lock of the MongoDB stores (``MAX_SESSIONS_POLICY = "refuse"``).

A lock is a document ``{"_id": "u:<user id>", "owner": <token>, "expires": <date>}`` in a
small collection of its own, ``<COLLECTION>_locks``: inserting it takes the lock (the unique
``_id`` refuses a second one), deleting it by its owner's token releases it. A holder that
died leaves a document whose ``expires`` has passed: the next login deletes it and takes
its place, and a TTL index on ``expires`` sweeps what nobody comes back for.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pymongo
from pymongo.errors import DuplicateKeyError, PyMongoError

from django_sessionkit.stores.base import (
    USER_LOCK_LAPSE,
    USER_LOCK_POLL,
    USER_LOCK_WAIT,
    Store,
    StoreUnavailable,
    user_lock_busy,
)

T = TypeVar("T")

#: The TTL index of the lock collection.
EXPIRY_INDEX = pymongo.IndexModel([("expires", 1)], expireAfterSeconds=0)


def _document(user_id: str, owner: str) -> dict[str, Any]:
    expires = datetime.now(timezone.utc) + timedelta(seconds=USER_LOCK_LAPSE)
    return {"_id": f"u:{user_id}", "owner": owner, "expires": expires}


def _lapsed(user_id: str) -> dict[str, Any]:
    return {"_id": f"u:{user_id}", "expires": {"$lte": datetime.now(timezone.utc)}}


def _took(store: Store, user_id: str, attempt: Callable[[], bool]) -> bool:
    """One attempt at the lock, under the circuit breaker; errors as StoreUnavailable."""
    with store.guarded():
        try:
            return attempt()
        except PyMongoError as exc:
            raise StoreUnavailable(store.describe(), exc) from exc


def locked(store: Store, locks: Any, timeout: float, user_id: str, work: Callable[[], T]) -> T:
    """Run ``work()`` holding the user's lock document in ``locks`` (a collection)."""
    owner, deadline = secrets.token_hex(12), time.monotonic() + USER_LOCK_WAIT

    def attempt() -> bool:
        with pymongo.timeout(timeout):
            try:
                locks.insert_one(_document(user_id, owner))
                return True
            except DuplicateKeyError:  # held; taken over below if its holder is gone
                locks.delete_one(_lapsed(user_id))
                return False

    while not _took(store, user_id, attempt):
        if time.monotonic() >= deadline:
            raise user_lock_busy(store, user_id)
        time.sleep(USER_LOCK_POLL)
    try:
        return work()
    finally:
        try:
            with store.guarded(), pymongo.timeout(timeout):
                locks.delete_one({"_id": f"u:{user_id}", "owner": owner})
        except (PyMongoError, StoreUnavailable):
            pass  # the document lapses by itself


async def alocked(
    store: Store, locks: Any, timeout: float, user_id: str, work: Callable[[], Awaitable[T]]
) -> T:
    owner, deadline = secrets.token_hex(12), time.monotonic() + USER_LOCK_WAIT
    while True:
        with store.guarded():
            try:
                with pymongo.timeout(timeout):
                    try:
                        await locks.insert_one(_document(user_id, owner))
                        break
                    except DuplicateKeyError:
                        await locks.delete_one(_lapsed(user_id))
            except PyMongoError as exc:
                raise StoreUnavailable(store.describe(), exc) from exc
        if time.monotonic() >= deadline:
            raise user_lock_busy(store, user_id)
        await asyncio.sleep(USER_LOCK_POLL)
    try:
        return await work()
    finally:
        try:
            with store.guarded(), pymongo.timeout(timeout):
                await locks.delete_one({"_id": f"u:{user_id}", "owner": owner})
        except (PyMongoError, StoreUnavailable):
            pass
