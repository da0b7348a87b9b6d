"""ExpressMongoStore: sessions in connect-mongo's own layout, shared with an Express app.

For ``SESSIONKIT["COMPAT"] = "express"``: a Django site and an Express app
(express-session + connect-mongo) on one MongoDB read and write the same sessions::

    SESSIONKIT = {
        "COMPAT": "express",
        "NAME": "connect.sid",
        "SECRET": ["the Express app's secret"],
        "STORE": {
            "BACKEND": "django_sessionkit.stores.mongo.ExpressMongoStore",
            "LOCATION": "mongodb://127.0.0.1:27017/myapp",   # connect-mongo's mongoUrl
            "OPTIONS": {"COLLECTION": "sessions"},            # its collectionName
        },
    }

Layout (connect-mongo 4 to 6 with its default ``stringify: true``): one document per
session, ``_id`` the session id itself (the engine hands this store the id in this mode),
``session`` express-session's JSON as a string, and ``expires`` a date::

    {"_id": "U2tot2dmNvWbL1UhRMVX42EUYDO39N0S",
     "session": "{\\"cookie\\":{\\"originalMaxAge\\":86400000,\\"expires\\":\\"…\\",…},
                 \\"views\\":2,\\"_sessionkit\\":{\\"v\\":3,…}}",
     "expires": ISODate("2026-11-24T08:57:30.736Z")}

The JSON is the one :class:`~django_sessionkit.stores.express.ExpressRedisStore` writes
(``cookie`` first, the application's keys, ours under ``_sessionkit``; express-session
carries unknown keys along). ``expires`` is the cookie's expiry, or now + ``TTL`` for a
browser-session cookie, as connect-mongo's ``computeExpires``; a session whose ``expires``
has passed is gone for both apps (connect-mongo's ``get`` filters on it too), whether or not
the TTL index removed it yet.

``OPTIONS``: :class:`~django_sessionkit.stores.mongo.MongoStore`'s connection options,
with connect-mongo's names and defaults: ``DATABASE`` (``dbName``: the URL's database, else
``"test"``, the driver's default), ``COLLECTION`` (``collectionName``, ``"sessions"``),
``TTL`` (``ttl``, 1209600 seconds), ``AUTO_REMOVE`` / ``AUTO_REMOVE_INTERVAL``
(``autoRemove`` ``"native"``: the same TTL index on ``expires`` connect-mongo creates;
the interval is in seconds here, minutes there).

Round trips: ``load`` 1, ``touch`` 1 (``$set`` of ``expires`` only, as connect-mongo's
touch: the JSON is not rewritten, ``last_seen`` waits for the next save), ``delete`` 1.
A save reads the document and writes it back on condition that ``session`` is still the
text it read (2 round trips, as the Redis layout): a mismatch reads again and re-applies
this request's changes on the newer JSON, so the Express app's keys survive; a session the
Express app deleted meanwhile is never re-created; a copy of this very write sent again
finds its own text stored and changes nothing. Express itself writes its whole loaded copy
back (``$set`` of ``session``), so a Django change made while an Express request is in
flight can still be lost there.

connect-mongo keeps no index but the TTL one: ``count``, ``list``, ``delete_for_user`` and
``find_by_prefix`` read every document — O(collection) in this mode.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

from django_sessionkit.stores.base import (
    Changes,
    CorruptSession,
    CreateError,
    Expired,
    SessionRecord,
    UpdateError,
    aware,
    utcnow,
)
from django_sessionkit.stores.express import COOKIE_KEY, ExpressLayout, parse_js_date
from django_sessionkit.stores.mongo.collection import (
    DUPLICATE_KEY,
    MongoCollectionStore,
    Steps,
    error_code,
    op,
)

logger = logging.getLogger("django_sessionkit")

__all__ = ["ExpressMongoStore"]

DEFAULT_TTL = 1209600  # connect-mongo's ``ttl`` default: 14 days, in seconds
#: Attempts of a read-then-write save before giving up (each lost to a concurrent writer).
MAX_SAVE_ATTEMPTS = 20
DELETE_BATCH = 500


def stored_expiry(value: Any) -> datetime | None:
    """``expires`` as a date: MongoDB gives back a date. (nx-27017, a server that speaks
    MongoDB's protocol, gives back a date an update wrote as its text, in UTC.)"""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ExpressMongoStore(ExpressLayout, MongoCollectionStore):
    """connect-mongo's layout; see the module docstring."""

    label = "express-mongodb"
    default_database = "test"
    default_collection = "sessions"
    own_options = {"TTL": (int,)}

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location, options)
        self.ttl = int(self.options.get("TTL", DEFAULT_TTL))

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> builtins.list[str]:
        found = super().check(location, options)
        ttl = options.get("TTL") if isinstance(options, Mapping) else None
        if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl <= 0:
            found.append(f"OPTIONS['TTL'] must be a number of seconds > 0, not {ttl!r}.")
        return found

    # --- documents ----------------------------------------------------------------

    def _expires(self, value: Mapping[str, Any], now: datetime) -> datetime:
        """connect-mongo's ``computeExpires``: the cookie's expiry, else now + TTL."""
        cookie = value.get(COOKIE_KEY)
        expires = parse_js_date(cookie.get("expires")) if isinstance(cookie, Mapping) else None
        return expires or now + timedelta(seconds=self.ttl)

    def _parsed(self, document: Any) -> tuple[dict[str, Any], datetime] | None:
        """The session's JSON and expiry, or ``None`` when missing, expired or unreadable."""
        if document is None:
            return None
        now = utcnow()
        try:
            text = document.get("session")
            if not isinstance(text, str):
                raise CorruptSession("'session' is not express-session's JSON string")
            value = self._parse(text)
        except CorruptSession as exc:
            logger.warning(
                "Session %s… in %s is unreadable (%s).",
                str(document.get("_id"))[:6],
                self.describe(),
                exc,
            )
            return None
        if "expires" in document:
            expires_at = stored_expiry(document["expires"]) or self._expires(value, now)
        else:  # connect-mongo reads a document without "expires" as one that never expires
            expires_at = self._expires(value, now)
        if expires_at <= now:
            return None
        return value, expires_at

    def _record(self, document: Any) -> SessionRecord | None:
        parsed = self._parsed(document)
        return None if parsed is None else self._from_value(parsed[0], parsed[1], utcnow())

    def _live(self, key: str) -> dict[str, Any]:
        """connect-mongo's own filter: no ``expires``, or one still to come."""
        now = utcnow()
        return {"_id": key, "$or": [{"expires": {"$exists": False}}, {"expires": {"$gt": now}}]}

    # --- steps (run sync or async) ------------------------------------------------------

    def _load_steps(self, key: str) -> Steps[SessionRecord | None]:
        return self._record((yield op("find_one", {"_id": key})))

    def _exists_steps(self, key: str) -> Steps[bool]:
        return self._parsed((yield op("find_one", {"_id": key}))) is not None

    def _save_steps(
        self, key: str, record: SessionRecord, must_create: bool, changes: Changes | None
    ) -> Steps[SessionRecord]:
        if must_create:
            return (yield from self._create_steps(key, record))
        written: str | None = None  # this save's text, once sent
        for _attempt in range(MAX_SAVE_ATTEMPTS):
            document = yield op("find_one", {"_id": key})
            text = None if document is None else document.get("session")
            if written is not None and text == written:  # sent already, and applied
                return self._saved(record, json.loads(written))
            parsed = self._parsed(document)
            if parsed is None or not isinstance(text, str):
                raise UpdateError(f"session {key[:6]}… no longer exists")
            stored = parsed[0]
            current = self._app_data(stored)
            data = dict(record.data) if changes is None else changes.apply(current)
            meta = stored.get("_sessionkit")
            previous = meta.get("v") if isinstance(meta, dict) else None
            version = (previous if isinstance(previous, int) else 0) + 1
            now = utcnow()
            value = self._value(stored, data, record, version, now)
            written = _dumps(value)
            result = yield op(
                "update_one",
                {"_id": key, "session": text},
                {"$set": {"session": written, "expires": self._expires(value, now)}},
            )
            if result.matched_count:
                return self._saved(record, value)
        raise self._unavailable(
            RuntimeError(
                f"session {key[:6]}… kept changing; gave up after {MAX_SAVE_ATTEMPTS} attempts"
            )
        )

    def _saved(self, record: SessionRecord, value: Mapping[str, Any]) -> SessionRecord:
        data = self._app_data(value)
        meta = value.get("_sessionkit") or {}
        version = int(meta.get("v", 0)) if isinstance(meta, Mapping) else 0
        return record.with_data(record.data if data == record.data else data, version)

    def _create_steps(self, key: str, record: SessionRecord) -> Steps[SessionRecord]:
        now = utcnow()
        value = self._value(None, record.data, record, 1, now)
        text = _dumps(value)
        try:
            yield op(
                "insert_one", {"_id": key, "session": text, "expires": self._expires(value, now)}
            )
        except PyMongoError as exc:
            if error_code(exc) not in DUPLICATE_KEY:
                raise
            # Ours, sent again after a lost reply? Then the session is there: done.
            if (yield op("find_one", {"_id": key, "session": text}, {"_id": 1})) is None:
                raise CreateError(f"a session with key {key[:6]}… already exists") from exc
        return record.with_data(record.data, 1)

    def _touch_steps(self, key: str, expires_at: datetime, last_seen: datetime) -> Steps[bool]:
        """connect-mongo's touch: ``expires`` only."""
        expires = aware(expires_at).astimezone(timezone.utc)
        result = yield op("update_one", self._live(key), {"$set": {"expires": expires}})
        return bool(result.matched_count)

    def _delete_steps(self, key: str) -> Steps[None]:
        yield op("delete_one", {"_id": key})

    # --- the contract ---------------------------------------------------------------

    # --- O(collection): connect-mongo keeps no index -------------------------------------

    def _all_steps(self) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        documents = yield op("find", {}, {"session": 1, "expires": 1})
        now = utcnow()
        found = []
        for document in documents:
            parsed = self._parsed(document)
            if parsed is not None:
                found.append((document["_id"], self._from_value(parsed[0], parsed[1], now)))
        return found

    def _all(self, user_id: str | None) -> builtins.list[tuple[str, SessionRecord]]:
        found = self._drive(self._all_steps(), admin=True)
        return found if user_id is None else [(k, r) for k, r in found if r.user_id == user_id]

    def _delete_keys_steps(self, keys: builtins.list[str]) -> Steps[int]:
        deleted = 0
        for first in range(0, len(keys), DELETE_BATCH):
            batch = keys[first : first + DELETE_BATCH]
            deleted += int((yield op("delete_many", {"_id": {"$in": batch}})).deleted_count)
        return deleted

    def _delete_keys(self, keys: builtins.list[str]) -> int:
        return self._drive(self._delete_keys_steps(keys), admin=True)

    def _expired_filter(self) -> dict[str, Any]:
        return {"expires": {"$lte": utcnow()}}

    def _expired_entry(self, key: str, document: Any) -> Expired:
        """What a purge reports of an expired document: its user when its JSON still
        reads (express-session's ``passport``), and when it expired."""
        expires_at = stored_expiry(document.get("expires")) or utcnow()
        text = document.get("session")
        try:
            value = self._parse(text) if isinstance(text, str) else None
        except CorruptSession:
            value = None
        if value is None:
            return Expired(key, None, expires_at)
        record = self._from_value(value, expires_at, expires_at)
        return Expired(key, record.user_id, expires_at, record=record)

    def index_models(self) -> builtins.list[pymongo.IndexModel]:
        return []  # connect-mongo's TTL index only (AUTO_REMOVE = "native")
