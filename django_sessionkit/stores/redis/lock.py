"""The per-user login lock of the Redis stores (``MAX_SESSIONS_POLICY = "refuse"``).

redis-py's own :class:`redis.lock.Lock` on one key: ``SET NX PX`` to take it, a script that
deletes it only for its owner's token to release it. One key is one slot, so it works the
same on a standalone server, behind Sentinel and on a Cluster. The lock lapses after
:data:`~django_sessionkit.stores.base.USER_LOCK_LAPSE` seconds if its holder dies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import LockError, RedisError

from django_sessionkit.stores.base import (
    USER_LOCK_LAPSE,
    USER_LOCK_POLL,
    USER_LOCK_WAIT,
    Store,
    StoreUnavailable,
    user_lock_busy,
)

logger = logging.getLogger("django_sessionkit")

T = TypeVar("T")


def _lock(client: Any, name: str) -> Any:
    return client.lock(
        name,
        timeout=USER_LOCK_LAPSE,
        sleep=USER_LOCK_POLL,
        blocking_timeout=USER_LOCK_WAIT,
        thread_local=False,
    )


def _lapsed(store: Store, user_id: str, exc: BaseException) -> None:
    logger.warning(
        "Session store %s: the login lock of user %r could not be released (%s); it "
        "lapses by itself within %g s.",
        store.describe(),
        user_id,
        exc,
        USER_LOCK_LAPSE,
    )


def locked(store: Store, client: Any, name: str, user_id: str, work: Callable[[], T]) -> T:
    """Run ``work()`` holding the lock ``name`` (see :meth:`Store.user_locked`)."""
    lock = _lock(client, name)
    with store.guarded():
        try:
            obtained = lock.acquire()
        except RedisError as exc:
            raise StoreUnavailable(store.describe(), exc) from exc
    if not obtained:
        raise user_lock_busy(store, user_id)
    try:
        return work()
    finally:
        try:
            lock.release()
        except (LockError, RedisError) as exc:  # lapsed, or the store went away meanwhile
            _lapsed(store, user_id, exc)


async def alocked(
    store: Store, client: Any, name: str, user_id: str, work: Callable[[], Awaitable[T]]
) -> T:
    lock = _lock(client, name)
    with store.guarded():
        try:
            obtained = await lock.acquire()
        except RedisError as exc:
            raise StoreUnavailable(store.describe(), exc) from exc
    if not obtained:
        raise user_lock_busy(store, user_id)
    try:
        return await work()
    finally:
        try:
            await lock.release()
        except (LockError, RedisError) as exc:
            _lapsed(store, user_id, exc)
