"""Finding sessions and users from what an operator types.

Sessions are named by a prefix of their store key (the SHA-256 of the id),
never by the id. In ``COMPAT="express"`` mode the store key *is* the id, so
there the shown handle is a prefix of the id's SHA-256 instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores.base import Cursor, IPFilter, SessionRecord, Store

#: Length of the key prefix the commands show.
HANDLE_LENGTH = 12


def keys_are_hashes() -> bool:
    return sessionkit_settings.COMPAT != "express"


def handle_of(key: str, length: int = HANDLE_LENGTH) -> str:
    """What the commands show for a store key: a prefix of a hash, never of an id."""
    return (key if keys_are_hashes() else cookies.hash_id(key))[:length]


def find_by_prefix(store: Store, prefix: str, limit: int = 2) -> list[tuple[str, SessionRecord]]:
    """Up to ``limit`` live sessions whose handle starts with ``prefix``.

    The store's own lookup by key prefix; in express compat mode, where keys are the
    ids themselves and handles are their hashes, one pass over ``iter_all``.
    """
    if keys_are_hashes():
        return store.find_by_prefix(prefix, limit)
    matches = []
    for key, record in store.iter_all():
        if handle_of(key, len(prefix)) == prefix:
            matches.append((key, record))
            if len(matches) >= limit:
                break
    return matches


def resolve_user(
    store: Store, value: str, *, has_sessions: Callable[[str], bool] | None = None
) -> tuple[str, str]:
    """The session ``user_id`` for ``--user`` (a username or a primary key) and a label.

    A deleted user's id is still accepted while it has sessions: in the store, or what
    ``has_sessions`` says (``listsessions --ended``: kept ended sessions).
    """
    users = get_user_model()
    by_name: AbstractBaseUser | None = users._default_manager.filter(
        **{users.USERNAME_FIELD: value}
    ).first()
    by_pk = _user_by_pk(value)
    if by_name is not None and by_pk is not None and by_name.pk != by_pk.pk:
        raise CommandError(
            f"--user {value!r} is ambiguous: it is the username of user id {by_name.pk} and "
            f"the id of user {by_pk.get_username()!r}. Pass the other user's username instead, "
            f"or id {by_name.pk} for the first."
        )
    user = by_name or by_pk
    if user is not None:
        return str(user.pk), f"{user.get_username()} (id {user.pk})"
    if has_sessions(value) if has_sessions else store.count(user_id=value):
        return value, f"deleted user id {value}"
    raise CommandError(
        f"--user {value!r}: no user has that {users.USERNAME_FIELD} or id, and no session "
        f"belongs to a user id {value!r}. Give a username or a user id (primary key)."
    )


def _user_by_pk(value: str) -> AbstractBaseUser | None:
    users = get_user_model()
    try:
        pk = users._meta.pk.to_python(value)
        user: AbstractBaseUser | None = users._default_manager.filter(pk=pk).first()
        return user
    except (ValidationError, ValueError, TypeError):
        return None


def usernames(user_ids: Iterable[str | None]) -> dict[str, str]:
    """Usernames for the ids of one page of sessions (one query); unknown ids are left out."""
    users = get_user_model()
    pks: list[Any] = []
    for user_id in {u for u in user_ids if u is not None}:
        try:
            pks.append(users._meta.pk.to_python(user_id))
        except (ValidationError, ValueError, TypeError):
            continue
    if not pks:
        return {}
    found = users._default_manager.filter(pk__in=pks)
    return {str(user.pk): user.get_username() for user in found}


def pages(
    store: Store, *, user_id: str | None, ip: IPFilter | None = None, page_size: int = 500
) -> Iterator[list[tuple[str, SessionRecord]]]:
    """Live sessions (one user's, or all; from one address or network), newest activity
    first, one page at a time, each going on after the last row of the one before."""
    after = None
    while True:
        page = store.list(user_id=user_id, ip=ip, after=after, limit=page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        after = Cursor.of(page[-1])
