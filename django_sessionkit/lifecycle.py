"""Ending sessions with their ``session_ended`` events: what the admin, the "where you're
signed in" page, the commands and a password change use.

With no receiver connected to ``session_ended``, each function is the store's own single
call (``delete``, ``delete_for_user``, ``delete_all``). With one, the sessions are listed
and ended one by one, and one event is sent per session that was ended, after the store
has answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.http import HttpRequest

from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.signals import Event, asend, send, session_ended
from django_sessionkit.stores.base import Expired, SessionRecord, Store, to_us, utcnow

#: Events sent at a time while every session is ended one by one.
PAGE = 200
#: A user's sessions are listed whole (a user has few; the store keeps them in an index).
PAGE_ALL = 10_000


def ended_event(
    key: str,
    user_id: str | None,
    reason: str,
    *,
    by: str | None = None,
    request: HttpRequest | None = None,
    record: SessionRecord | None = None,
) -> Event:
    from django_sessionkit.engine import SessionStore

    return session_ended, {
        "sender": SessionStore,
        "key_hash": key,
        "user_id": user_id,
        "reason": reason,
        "by": by,
        "request": request,
        "record": record,
    }


def end_one(
    store: Store,
    key: str,
    record: SessionRecord | None,
    *,
    reason: str = "revoked",
    by: str | None = None,
    request: HttpRequest | None = None,
) -> None:
    store.delete(key)
    user_id = record.user_id if record else None
    send([ended_event(key, user_id, reason, by=by, request=request, record=record)])


def end_user(
    store: Store,
    user_id: str,
    *,
    keep: str | None = None,
    reason: str = "revoked",
    by: str | None = None,
    request: HttpRequest | None = None,
) -> int:
    """End every session of ``user_id`` but ``keep``; how many were ended."""
    if not session_ended.has_listeners():
        return store.delete_for_user(user_id, keep=keep)
    events = []
    for key, record in store.list(user_id=user_id, limit=PAGE_ALL):
        if key == keep:
            continue
        store.delete(key)
        events.append(ended_event(key, user_id, reason, by=by, request=request, record=record))
    send(events)
    return len(events)


async def aend_user(
    store: Store,
    user_id: str,
    *,
    keep: str | None = None,
    reason: str = "revoked",
    by: str | None = None,
    request: HttpRequest | None = None,
) -> int:
    if not session_ended.has_listeners():
        return await store.adelete_for_user(user_id, keep=keep)
    events = []
    listed = await store.alist(user_id=user_id, limit=PAGE_ALL)
    for key, record in listed:
        if key == keep:
            continue
        await store.adelete(key)
        events.append(ended_event(key, user_id, reason, by=by, request=request, record=record))
    await asend(events)
    return len(events)


def end_all(
    store: Store,
    *,
    keep: str | None = None,
    by: str | None = None,
    request: HttpRequest | None = None,
) -> int:
    """End every session but ``keep`` that existed when this started; how many were ended."""
    if not session_ended.has_listeners():
        return store.delete_all(keep=keep)
    started, ended, events = utcnow(), 0, []
    for key, record in list(store.iter_all()):
        if key != keep and record.created_at <= started:
            store.delete(key)
            ended += 1
            events.append(
                ended_event(key, record.user_id, "revoked", by=by, request=request, record=record)
            )
            if len(events) >= PAGE:
                send(events)
                events = []
    send(events)
    return ended


#: How far a stored expiry may lie from a limit and still be that limit's doing (the stores
#: keep microseconds; Redis' own expiry is rounded up to the millisecond).
_SLACK = timedelta(milliseconds=1)


def expiry_reason(expired: Expired) -> str:
    """``"idle_timeout"`` when the session ran out IDLE_TIMEOUT after its last activity,
    ``"absolute_timeout"`` when ABSOLUTE_TIMEOUT after its start, else ``"expired"``."""
    idle, absolute = conf.IDLE_TIMEOUT, conf.ABSOLUTE_TIMEOUT
    record = expired.record
    seen = record.last_seen if record else expired.last_seen
    start = record.created_at if record else expired.created_at

    def at(start: datetime, seconds: int) -> bool:
        return abs(start + timedelta(seconds=seconds) - expired.expires_at) <= _SLACK

    if idle is not None and seen is not None and at(seen, idle):
        return "idle_timeout"
    if absolute is not None and start is not None and at(start, absolute):
        return "absolute_timeout"
    return "expired"


def purge(store: Store, batch_size: int = 1000) -> Iterator[int]:
    """The store's purge, batch by batch (how many each removed), each batch followed by
    one ``session_ended`` per session it removed while a receiver listens: reason
    ``"expired"``, ``"idle_timeout"`` or ``"absolute_timeout"`` (:func:`expiry_reason`).

    Every way of purging goes through here (``purgesessions``, ``clearsessions``,
    ``SessionStore.clear_expired()``, MongoDB's ``AUTO_REMOVE = "interval"``), so a session
    that expires is reported by the one purge that removed it, once.
    """
    if not session_ended.has_listeners():
        yield from store.purge_expired(batch_size)
        return
    report: list[Expired] = []
    batches = store.purge_expired(batch_size, report=report)
    try:
        for removed in batches:
            _report(report)
            yield removed
    finally:
        close = getattr(batches, "close", None)  # a generator's: its batch ends cleanly
        if close is not None:
            close()
        _report(report)


def _report(expired: list[Expired]) -> None:
    events = [ended_event(e.key, e.user_id, expiry_reason(e), record=e.record) for e in expired]
    expired.clear()
    send(events)


def _beyond_limit(
    listed: list[tuple[str, SessionRecord]], limit: int
) -> list[tuple[str, SessionRecord]]:
    """The sessions past the ``limit`` most recently seen, in one order every process agrees
    on (last seen, then key): when several logins of one user race, each ends the same ones,
    and exactly ``limit`` are left once the last of them has looked."""
    ordered = sorted(listed, key=lambda item: (-to_us(item[1].last_seen), item[0]))
    return ordered[limit:]


def enforce_limit(
    store: Store, user_id: str, limit: int, *, request: HttpRequest | None = None
) -> int:
    """End the user's least recently seen sessions past ``limit`` (MAX_SESSIONS_PER_USER);
    how many were ended. Called after the login's own session is saved."""
    doomed = _beyond_limit(store.list(user_id=user_id, limit=PAGE_ALL), limit)
    for key, _record in doomed:
        store.delete(key)
    send(
        [
            ended_event(k, user_id, "revoked", by="limit", request=request, record=r)
            for k, r in doomed
        ]
    )
    return len(doomed)


async def aenforce_limit(
    store: Store, user_id: str, limit: int, *, request: HttpRequest | None = None
) -> int:
    doomed = _beyond_limit(await store.alist(user_id=user_id, limit=PAGE_ALL), limit)
    for key, _record in doomed:
        await store.adelete(key)
    await asend(
        [
            ended_event(k, user_id, "revoked", by="limit", request=request, record=r)
            for k, r in doomed
        ]
    )
    return len(doomed)
