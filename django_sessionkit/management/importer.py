"""Copying Django sessions into the sessionkit store under the id their cookie carries.

A Django session whose cookie holds ``<session_key>`` is stored under
``store_key(<session_key>)``: exactly where the engine looks for a browser
presenting that id. Records are only ever inserted (``must_create``), so a
re-run neither duplicates nor overwrites a session that sessionkit has saved
since.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import CommandError

from django_sessionkit.engine import AUTH_USER_KEY, IMPORTED_KEY, store_key
from django_sessionkit.management.legacy import LegacySession, Source
from django_sessionkit.stores.base import CreateError, SessionRecord, Store, encode_data, utcnow


@dataclasses.dataclass
class ImportCounts:
    read: int = 0
    imported: int = 0  # or, in a dry run, that would be
    already_present: int = 0
    undecodable: int = 0
    not_storable: int = 0
    problems: dict[str, int] = dataclasses.field(default_factory=dict)

    def skip(self, problem: str) -> None:
        self.problems[problem] = self.problems.get(problem, 0) + 1


def record_for(session: LegacySession, now: datetime) -> SessionRecord:
    """Our record for a decoded Django session.

    Django keeps no activity times: last activity is estimated as expiry minus
    ``SESSION_COOKIE_AGE`` (when Django last saved it), never later than now.
    """
    assert session.data is not None
    user_id = session.data.get(AUTH_USER_KEY)
    last_seen = min(now, session.expires_at - timedelta(seconds=settings.SESSION_COOKIE_AGE))
    return SessionRecord(
        data={**session.data, IMPORTED_KEY: True},
        expires_at=session.expires_at,
        created_at=last_seen,
        last_seen=last_seen,
        user_id=None if user_id is None else str(user_id),
    )


def import_sessions(
    store: Store, source: Source, *, batch_size: int, dry_run: bool
) -> ImportCounts:
    """Copy every live session of ``source`` into ``store``; a dry run writes nothing.

    The first batch is decoded before anything is written: if none of it is
    Django session data, the import stops with nothing changed.
    """
    counts = ImportCounts()
    for number, batch in enumerate(source.batches(batch_size)):
        decoded = [s for s in batch if s.data is not None]
        if number == 0 and batch and not decoded:
            raise not_django_format(source, batch)
        counts.read += len(batch)
        for session in batch:
            copy(store, session, counts, dry_run=dry_run)
    if counts.read == 0:
        raise CommandError(
            f"Nothing to import: {source.label} holds no live sessions. Nothing was changed. "
            "Check --from (db, cached_db or cache) and --database / --cache."
        )
    return counts


def copy(store: Store, session: LegacySession, counts: ImportCounts, *, dry_run: bool) -> None:
    if session.data is None:
        counts.undecodable += 1
        counts.skip(session.problem)
        return
    try:
        encode_data(session.data)
    except (TypeError, ValueError):
        counts.not_storable += 1
        counts.skip("holds values that are not JSON (sessionkit stores JSON)")
        return
    key = store_key(session.session_key)
    if dry_run:
        if store.exists(key):
            counts.already_present += 1
        else:
            counts.imported += 1
        return
    try:
        store.save(key, record_for(session, utcnow()), must_create=True)
    except CreateError:
        counts.already_present += 1
    else:
        counts.imported += 1


def not_django_format(source: Source, batch: list[LegacySession]) -> CommandError:
    reasons = sorted({s.problem for s in batch})
    return CommandError(
        f"{source.label} does not hold Django session data: none of the first {len(batch)} "
        f"entries decoded ({'; '.join(reasons)}). Nothing was imported. Accepted: sessions "
        "written by Django's db, cached_db or cache engine of this project, signed with its "
        "SECRET_KEY (or SECRET_KEY_FALLBACKS) and SESSION_SERIALIZER."
    )
