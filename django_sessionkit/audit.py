"""The audit trail: how each session started and, for ``SESSIONKIT["KEEP_ENDED"]`` seconds,
how each one ended, when, and by whom.

Off by default (``KEEP_ENDED = 0``): then nothing here is connected to any signal, no session
carries a mark, and ending sessions keeps its single-store-call fast paths
(:mod:`django_sessionkit.lifecycle`). With ``KEEP_ENDED > 0``:

* a login marks its session with how it started (:data:`STARTED_KEY` in the session's
  data, written with the login's own save): ``"signup"`` when the user's account was
  created (``date_joined``) during the session the login happened in, or less than
  :data:`SIGNUP_WINDOW` before the login; ``"login"`` otherwise. A session copied by
  ``importsessions`` is marked ``"imported"`` when it moves to one of our ids; a session
  nobody signed in to is an anonymous ``"visit"``;
* a receiver of :data:`~django_sessionkit.signals.session_ended` (the one hook, which
  your own receivers share) writes an :class:`~django_sessionkit.models.EndedSession` row
  in the database of the database store (with any other store, where Django's routers
  write it: ``"default"`` without routers);
* the purge (``purgesessions``, ``clearsessions``) removes rows older than ``KEEP_ENDED``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.signals import user_logged_in
from django.core.signals import setting_changed
from django.db import router
from django.db.models import Q, QuerySet

from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.signals import session_ended
from django_sessionkit.stores.base import SessionRecord, aware, utcnow

if TYPE_CHECKING:
    from django.http import HttpRequest

    from django_sessionkit.models import EndedSession

#: The session data key holding how the session started (only while the audit is on).
STARTED_KEY = "_sessionkit_started"
#: A login this soon after the user's account was created is a signup, even in a session
#: that began after the account (a signup form that creates the account, then signs in).
SIGNUP_WINDOW = timedelta(minutes=10)

STARTED_LABELS = {
    "login": "signed in",
    "signup": "signed up",
    "imported": "imported from Django's sessions",
    "visit": "anonymous visit",
}
#: How a session ended, by (reason, by); ``by`` "" stands for any.
ENDED_LABELS = {
    ("logout", ""): "signed out",
    ("revoked", "admin"): "ended by an administrator",
    ("revoked", "user"): "signed out from another session",
    ("revoked", "command"): "ended by a command (revokesessions)",
    ("revoked", "limit"): "ended by a newer sign-in (too many sessions)",
    ("expired", ""): "expired",
    ("idle_timeout", ""): "timed out (inactive too long)",
    ("absolute_timeout", ""): "timed out (open too long)",
    ("password_changed", ""): "signed out by a password change",
}

_UID = "django_sessionkit.audit"


def is_on() -> bool:
    return conf.KEEP_ENDED > 0


def alias() -> str:
    """The database the ended sessions are kept in: the database store's (beside its
    sessions), else the one Django's routers write the model to ("default" without
    routers)."""
    from django_sessionkit.models import EndedSession
    from django_sessionkit.stores import get_store
    from django_sessionkit.stores.database import DatabaseStore

    store = get_store()
    if isinstance(store, DatabaseStore):
        return store.alias
    return str(router.db_for_write(EndedSession))


def rows() -> QuerySet[EndedSession]:
    from django_sessionkit.models import EndedSession

    found: QuerySet[EndedSession] = EndedSession.objects.using(alias())
    return found


# --- how a session started ------------------------------------------------------------


def started(record: SessionRecord | None) -> str:
    """How the session of ``record`` started (a key of :data:`STARTED_LABELS`), or "" when
    it was not recorded (a session signed in before the audit was on; no record)."""
    if record is None:
        return ""
    from django_sessionkit.engine import IMPORTED_KEY

    how = record.data.get(STARTED_KEY)
    if isinstance(how, str) and how in STARTED_LABELS:
        return how
    if record.data.get(IMPORTED_KEY):
        return "imported"  # not back since the import
    return "visit" if record.user_id is None else ""


def started_label(how: str) -> str:
    return STARTED_LABELS.get(how, "not recorded")


def ended_label(reason: str, by: str) -> str:
    label = ENDED_LABELS.get((reason, by)) or ENDED_LABELS.get((reason, ""))
    return label or (f"{reason} (by {by})" if by else reason)


def _joined_during(user: Any, began: datetime | None) -> bool:
    """The signup rule: the account was created since the session began, or within
    SIGNUP_WINDOW of now. A user model without ``date_joined`` never signs up."""
    joined = getattr(user, "date_joined", None)
    if not isinstance(joined, datetime):
        return False
    joined = aware(joined)
    return (began is not None and joined >= began) or utcnow() - joined <= SIGNUP_WINDOW


def _mark_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """``user_logged_in``: mark the session with how it started. Django's ``login()`` has
    just given it a new id (or a new, empty session for another user); signing in again to
    the session of the same user keeps the mark it has."""
    from django_sessionkit.engine import SessionStore

    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore):
        return
    record = session.record
    if record is not None and record.user_id == str(user.pk) and STARTED_KEY in session:
        return
    session[STARTED_KEY] = "signup" if _joined_during(user, session.began) else "login"


def mark_imported(session: Any) -> None:
    """An imported session moves to one of our ids (the middleware): remember it."""
    if is_on():
        session[STARTED_KEY] = "imported"


# --- how it ended ----------------------------------------------------------------------


def _record_ended(
    sender: Any,
    key_hash: str,
    user_id: str | None,
    reason: str,
    by: str | None = None,
    record: SessionRecord | None = None,
    **kwargs: Any,
) -> None:
    """``session_ended``: keep the session that ended, with how and when."""
    if conf.COMPAT == "express":  # the store key is the id itself: keep only its hash
        key_hash = hashlib.sha256(key_hash.encode()).hexdigest()
    rows().create(
        key=key_hash,
        user_id=user_id,
        started=started(record),
        created_at=record.created_at if record else None,
        last_seen=record.last_seen if record else None,
        ip=record.ip if record else None,
        user_agent=record.user_agent or "" if record else "",
        ended_at=utcnow(),
        reason=reason,
        by=by or "",
    )


def for_user(user_id: str, limit: int = 20) -> list[EndedSession]:
    """The user's most recently ended sessions still kept (none while the audit is off)."""
    if not is_on():
        return []
    return list(rows().filter(user_id=user_id).order_by("-ended_at", "-id")[:limit])


def find(ref: str) -> EndedSession | None:
    """The kept ended session whose key starts with ``ref`` (the latest, should a key have
    ended twice), or None."""
    found: EndedSession | None = (
        rows().filter(key__startswith=ref).order_by("-ended_at", "-id").first()
    )
    return found


def page(
    *,
    user_id: str | None = None,
    ip: Q | None = None,
    since: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 500,
) -> list[EndedSession]:
    """Kept ended sessions, most recently ended first, ``limit`` at a time; ``before``:
    the ``(ended_at, id)`` of the last row of the page before."""
    found = rows()
    if user_id is not None:
        found = found.filter(user_id=user_id)
    if ip is not None:
        found = found.filter(ip)
    if since is not None:
        found = found.filter(ended_at__gte=since)
    if before is not None:
        at, row_id = before
        found = found.filter(Q(ended_at__lt=at) | Q(ended_at=at, id__lt=row_id))
    return list(found.order_by("-ended_at", "-id")[:limit])


def purge(batch_size: int = 1000, now: datetime | None = None) -> int:
    """Remove the ended sessions kept longer than KEEP_ENDED, ``batch_size`` at a time;
    how many. Nothing at all (not a query) while the audit is off."""
    keep = conf.KEEP_ENDED
    if keep <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(seconds=keep)
    removed = 0
    while True:
        old = rows().filter(ended_at__lt=cutoff).order_by("ended_at")
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            return removed
        removed += int(rows().filter(id__in=ids)._raw_delete(alias()))
        if len(ids) < batch_size:
            return removed


# --- on and off ------------------------------------------------------------------------


def sync(**kwargs: Any) -> None:
    """Connect the receivers while KEEP_ENDED > 0, disconnect them otherwise (at start-up,
    and whenever the settings change)."""
    if is_on():
        session_ended.connect(_record_ended, dispatch_uid=_UID)
        user_logged_in.connect(_mark_login, dispatch_uid=_UID)
    else:
        session_ended.disconnect(dispatch_uid=_UID)
        user_logged_in.disconnect(dispatch_uid=_UID)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "SESSIONKIT":
        sync()


setting_changed.connect(_setting_changed, dispatch_uid=_UID)
