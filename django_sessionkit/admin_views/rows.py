"""How a session shows on the pages: its row (user, where, which browser, this is you)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from django_sessionkit import audit, useragent
from django_sessionkit.stores.base import (
    SessionRecord,
)

if TYPE_CHECKING:
    pass

from django_sessionkit.admin_views.parsing import (
    Item,
    session_ref,
    stamp,
)

# --- presentation -------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """What a template may show of one session (never its key)."""

    ref: str
    record: SessionRecord
    agent: useragent.Agent
    user: Model | None
    user_url: str | None
    is_current: bool
    #: How it started, while the audit trail is on (KEEP_ENDED); None otherwise.
    started: str | None = None

    @property
    def user_id(self) -> str | None:
        return self.record.user_id

    @property
    def seen(self) -> str:
        """Its last-seen time as links carry it (see :func:`find_session`)."""
        return stamp(self.record.last_seen)


def _users(ids: Iterable[str]) -> dict[str, Model]:
    """The users with these ids (as stores keep them: ``str(pk)``), found in one query.

    An id that is not one (``"x"``, ``"007"``, an integer past the primary key's column,
    such as ``2**63``, which SQLite cannot even be asked about) finds no user."""
    User = get_user_model()
    field = User._meta.pk
    assert field is not None
    pks: dict[Any, str] = {}
    for user_id in set(ids):
        try:
            pk = field.to_python(user_id)
            field.run_validators(pk)  # an integer id: in the column's range
        except (ValidationError, ValueError, TypeError, OverflowError):
            continue
        if str(pk) == user_id:
            pks[pk] = user_id
    found = User._default_manager.in_bulk(list(pks))
    return {pks[pk]: user for pk, user in found.items() if pk in pks}


def _user_url(site_name: str, user: Model) -> str | None:
    opts = user._meta
    try:
        return reverse(f"{site_name}:{opts.app_label}_{opts.model_name}_change", args=[user.pk])
    except NoReverseMatch:
        return None


def rows(items: Sequence[Item], current_key: str | None, site_name: str = "admin") -> list[Row]:
    users = _users(record.user_id for _, record in items if record.user_id)
    on = audit.is_on()
    result = []
    for key, record in items:
        user = users.get(record.user_id) if record.user_id else None
        result.append(
            Row(
                ref=session_ref(key),
                record=record,
                agent=useragent.describe(record.user_agent or ""),
                user=user,
                user_url=_user_url(site_name, user) if user is not None else None,
                is_current=key == current_key,
                started=audit.started_label(audit.started(record)) if on else None,
            )
        )
    return result


def current_key(request: HttpRequest) -> str | None:
    key = getattr(request.session, "key_hash", None)
    return key if isinstance(key, str) else None
