"""Ending sessions with their ``session_ended`` events: what the admin, the "where you're
signed in" page, the commands and a password change use.

With no receiver connected to ``session_ended``, each function is the store's own single
call (``delete``, ``delete_for_user``, ``delete_all``). With one, the sessions are listed
and ended one by one, and one event is sent per session that was ended, after the store
has answered.
"""

from __future__ import annotations

from django.http import HttpRequest

from django_sessionkit.signals import Event, asend, send, session_ended
from django_sessionkit.stores.base import SessionRecord, Store, to_us, utcnow

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
