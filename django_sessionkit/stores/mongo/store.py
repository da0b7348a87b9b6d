"""MongoStore: sessions in a MongoDB collection, one document per session.

Configured like the other stores (``pip install 'django-sessionkit[mongo]'``)::

    SESSIONKIT = {"STORE": {
        "BACKEND": "django_sessionkit.stores.mongo.MongoStore",
        "LOCATION": "mongodb://127.0.0.1:27017/myapp",
        "OPTIONS": {"COLLECTION": "sessionkit_sessions"},
    }}

It runs on pymongo: ``MongoClient`` for the sync API, ``AsyncMongoClient`` for the async
one (no thread hop). The options are in :mod:`.connection` and in docs/stores-mongodb.md.

A document (``K`` is the SHA-256 hex of the session id; times are whole microseconds
since 1970, as integers)::

    {"_id": K,
     "data": {"views": 3, "cart": "[\\"apple\\"]", "_auth_user_id": "\\"7\\""},
     "version": 4, "user": "7", "signedIn": true, "ip": "192.0.2.1", "ipKey": "4c0000201",
     "userAgent": "Mozilla/5.0 …", "createdUs": …, "lastSeenUs": …, "expiresUs": …,
     "expires": ISODate("…"), "order": "<16 hex digits><K>", "tokens": ["…", …]}

* ``data`` holds one field per session key (names escaped: ``%`` ``.`` ``$`` and NUL as
  ``%25`` ``%2E`` ``%24`` ``%00``, the empty name as ``%``). A number is stored as a
  number, so that ``incr()`` is a server-side ``$inc``; every other value as its JSON text.
* ``expiresUs`` is the truth about expiry: every read filters on it, so the store is
  correct whether or not a TTL monitor runs. ``expires`` is the same moment as a date, for
  the TTL index (``AUTO_REMOVE = "native"``); the batched purge removes the rest.
* ``order`` is the listing order in one string, most recently seen first, then by key:
  16 hex digits of (2^63 - ``lastSeenUs``), then the key. A page after a :class:`Cursor` is
  one range on it. The indexes: ``order``; ``signedIn, order``; ``user, order``;
  ``ipKey, order``; ``expiresUs``; and the TTL index on ``expires``.
* ``tokens``: the last 8 saves' tokens. A save whose token is there already was applied
  (a copy sent again after its reply was lost): it changes nothing and answers with the
  document as stored.

Round trips: ``load`` 1, ``save`` 1, ``touch`` 1, ``delete`` 1. A save is one
``find_one_and_update`` that sets, unsets and ``$inc``\\ s only this request's keys, so a
concurrent save is merged by the server itself, and answers with the document as it now is.
Only a save whose ``$inc`` meets a value that is not a number (or would overflow 64 bits)
reads the document and writes again, conditional on its version.
"""

from __future__ import annotations

import builtins
import logging
import secrets
from datetime import datetime
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import OperationFailure, PyMongoError

from django_sessionkit.stores.base import (
    Changes,
    CorruptSession,
    CreateError,
    Cursor,
    Expired,
    IPFilter,
    SessionRecord,
    UpdateError,
    as_network,
    from_us,
    ip_code,
    to_us,
)
from django_sessionkit.stores.mongo.collection import (
    DUPLICATE_KEY,
    MongoCollectionStore,
    Steps,
    error_code,
    op,
    single,
)
from django_sessionkit.stores.mongo.layout import (
    DELETE_BATCH,
    INC_REFUSED,
    MAX_SAVE_ATTEMPTS,
    PROJECTION,
    RECENT_TOKENS,
    decoded,
    encode_value,
    encoded,
    field_name,
    metadata,
    now_us,
    order_key,
)
from django_sessionkit.stores.steps import StepListing

logger = logging.getLogger("django_sessionkit")

__all__ = ["MongoStore"]


class MongoStore(MongoCollectionStore, StepListing):
    """Sessions in a MongoDB collection; see the module docstring."""

    label = "mongodb"
    indexes_key_prefixes = True  # _id's own index answers a prefix range

    def index_models(self) -> builtins.list[pymongo.IndexModel]:
        return [
            pymongo.IndexModel([("order", 1)]),
            pymongo.IndexModel([("signedIn", 1), ("order", 1)]),
            pymongo.IndexModel([("user", 1), ("order", 1)]),
            pymongo.IndexModel([("ipKey", 1), ("order", 1)]),
            pymongo.IndexModel([("expiresUs", 1)]),
        ]

    # --- documents ----------------------------------------------------------------

    def _record(self, document: Any) -> SessionRecord | None:
        if document is None:
            return None
        try:
            return SessionRecord(
                data=decoded(document.get("data", {})),
                expires_at=from_us(int(document["expiresUs"])),
                created_at=from_us(int(document["createdUs"])),
                last_seen=from_us(int(document["lastSeenUs"])),
                user_id=document.get("user"),
                ip=document.get("ip"),
                user_agent=document.get("userAgent") or "",
                version=int(document["version"]),
            )
        except (CorruptSession, KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "Session %s… in %s is unreadable (%s: %s).",
                str(document.get("_id"))[:12],
                self.describe(),
                type(exc).__name__,
                exc,
            )
            return None

    def _items(self, documents: builtins.list[Any]) -> builtins.list[tuple[str, SessionRecord]]:
        return [(d["_id"], r) for d in documents if (r := self._record(d)) is not None]

    @staticmethod
    def _live(**conditions: Any) -> dict[str, Any]:
        return {**conditions, "expiresUs": {"$gt": now_us()}}

    # --- the steps of each operation (run sync or async) ----------------------------

    def _load_steps(self, key: str) -> Steps[SessionRecord | None]:
        document = yield op("find_one", self._live(_id=key), PROJECTION)
        return self._record(document)

    def _exists_steps(self, key: str) -> Steps[bool]:
        document = yield op("find_one", self._live(_id=key), {"_id": 1})
        return document is not None

    def _save_steps(
        self, key: str, record: SessionRecord, must_create: bool, changes: Changes | None
    ) -> Steps[SessionRecord]:
        token = secrets.token_urlsafe(9)
        if must_create:
            return (yield from self._create_steps(key, record, token))
        update: dict[str, Any] = {"$set": metadata(key, record)}
        if changes is None:  # the whole data, replaced
            update["$set"]["data"] = encoded(record.data)
        else:
            for name, value in changes.set.items():
                update["$set"][f"data.{field_name(name)}"] = encode_value(value)
            if changes.removed:
                update["$unset"] = {f"data.{field_name(k)}": "" for k in changes.removed}
        increments = {} if changes is None else changes.increments
        update["$inc"] = {
            "version": 1,
            **{f"data.{field_name(k)}": delta for k, delta in increments.items()},
        }
        update["$push"] = {"tokens": {"$each": [token], "$slice": -RECENT_TOKENS}}
        try:
            document = yield op(
                "find_one_and_update",
                self._live(_id=key, tokens={"$nin": [token]}),
                update,
                PROJECTION,
                return_document=ReturnDocument.AFTER,
            )
        except OperationFailure as exc:
            if not increments or exc.code not in INC_REFUSED:
                raise
            assert changes is not None
            return (yield from self._add_up_steps(key, record, changes, update, token))
        if document is None:  # missing, expired, or this very save applied already
            return (yield from self._replayed_steps(key, token))
        saved = self._record(document)
        if saved is None:
            raise UpdateError(f"session {key[:12]}… is unreadable after its save")
        if saved.version == record.version + 1 or changes is None:
            return record.with_data(record.data, saved.version)  # nobody saved in between
        return record.with_data(saved.data, saved.version)

    def _create_steps(self, key: str, record: SessionRecord, token: str) -> Steps[SessionRecord]:
        document = {
            "_id": key,
            "data": encoded(record.data),
            "version": 1,
            **metadata(key, record),
            "createdUs": to_us(record.created_at),
            "tokens": [token],
        }
        try:
            yield op("insert_one", document)
        except PyMongoError as exc:
            if error_code(exc) not in DUPLICATE_KEY:
                raise
            # Ours, sent again after a lost reply? Then the session is there: done.
            mine = yield op("find_one", {"_id": key, "tokens": token}, {"version": 1})
            if mine is None:
                raise CreateError(f"a session with key {key[:12]}… already exists") from exc
            return record.with_data(record.data, int(mine["version"]))
        return record.with_data(record.data, 1)

    def _replayed_steps(self, key: str, token: str) -> Steps[SessionRecord]:
        """After a save that matched nothing: this save's earlier copy, or a gone session."""
        document = yield op("find_one", self._live(_id=key))
        if document is None or token not in (document.get("tokens") or []):
            raise UpdateError(f"session {key[:12]}… no longer exists")
        saved = self._record(document)
        if saved is None:
            raise UpdateError(f"session {key[:12]}… is unreadable")
        return saved

    def _add_up_steps(
        self,
        key: str,
        record: SessionRecord,
        changes: Changes,
        update: dict[str, Any],
        token: str,
    ) -> Steps[SessionRecord]:
        """The server refused an ``$inc``: read the document, add the increments as
        :meth:`Changes.apply` does, and write them as values, conditional on the version."""
        update = {name: dict(fields) for name, fields in update.items()}
        for name in changes.increments:
            update["$inc"].pop(f"data.{field_name(name)}", None)
        for _attempt in range(MAX_SAVE_ATTEMPTS):
            document = yield op("find_one", self._live(_id=key))
            if document is None:
                raise UpdateError(f"session {key[:12]}… no longer exists")
            if token in (document.get("tokens") or []):  # applied already (a replayed copy)
                replayed = self._record(document)
                if replayed is None:
                    raise UpdateError(f"session {key[:12]}… is unreadable")
                return replayed
            try:
                current = decoded(document.get("data", {}))
            except CorruptSession:
                current = {}
            totals = Changes(increments=changes.increments).apply(current)
            for name in changes.increments:
                update["$set"][f"data.{field_name(name)}"] = encode_value(totals[name])
            saved = yield op(
                "find_one_and_update",
                {"_id": key, "version": document["version"], "tokens": {"$nin": [token]}},
                update,
                PROJECTION,
                return_document=ReturnDocument.AFTER,
            )
            if saved is not None and (merged := self._record(saved)) is not None:
                return record.with_data(merged.data, merged.version)
        raise self._unavailable(
            RuntimeError(
                f"session {key[:12]}… kept changing; gave up after {MAX_SAVE_ATTEMPTS} attempts"
            )
        )

    def _touch_steps(self, key: str, expires_at: datetime, last_seen: datetime) -> Steps[bool]:
        expires_us, seen_us = to_us(expires_at), to_us(last_seen)
        moved = {
            "expiresUs": expires_us,
            "expires": from_us(expires_us),
            "lastSeenUs": seen_us,
            "order": order_key(last_seen, key),
        }
        result = yield op("update_one", self._live(_id=key), {"$set": moved})
        return bool(result.matched_count)

    def _delete_steps(self, key: str) -> Steps[None]:
        yield op("delete_one", {"_id": key})

    def _count_steps(self, user_id: str | None) -> Steps[int]:
        query = self._live() if user_id is None else self._live(user=str(user_id))
        return int((yield op("count_documents", query)))

    def _list_steps(
        self,
        user_id: str | None,
        signed_in: bool | None,
        ip: IPFilter | None,
        after: Cursor | None,
        limit: int,
    ) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        if limit <= 0:
            return []
        query = self._live()
        hint: builtins.list[tuple[str, int]] | None = [("order", 1)]
        if user_id is not None:
            query["user"] = str(user_id)
            hint = [("user", 1), ("order", 1)]
        if signed_in is not None:
            query["signedIn"] = signed_in
            if user_id is None:
                hint = [("signedIn", 1), ("order", 1)]
        if ip is not None:
            network = as_network(ip)
            first, last = network.network_address, network.broadcast_address
            if first == last:
                query["ipKey"] = ip_code(str(first))
                if user_id is None:
                    hint = [("ipKey", 1), ("order", 1)]
            else:
                # A range of addresses: the server picks between the ipKey index (then a
                # sort of the matches) and a walk along the order index.
                query["ipKey"] = {"$gte": ip_code(str(first)), "$lte": ip_code(str(last))}
                if user_id is None:
                    hint = None
        if after is not None:
            query["order"] = {"$gt": order_key(after.last_seen, after.key)}
        options: dict[str, Any] = {"sort": [("order", 1)], "limit": limit}
        if hint is not None:
            options["hint"] = hint
        documents = yield op("find", query, PROJECTION, **options)
        return self._items(documents)

    def _delete_all_steps(self, keep: str | None) -> Steps[int]:
        """Batches along ``_id``: every live session created before this started, but
        ``keep``; one created meanwhile is left alone."""
        started = now_us()
        ended, last = 0, None
        while True:
            ids: dict[str, Any] = {} if last is None else {"$gt": last}
            if keep is not None:
                ids["$ne"] = keep
            query = self._live(createdUs={"$lte": started})
            if ids:
                query["_id"] = ids
            found = yield op("find", query, {"_id": 1}, sort=[("_id", 1)], limit=DELETE_BATCH)
            keys = [document["_id"] for document in found]
            if keys:
                result = yield op(
                    "delete_many", {"_id": {"$in": keys}, "createdUs": {"$lte": started}}
                )
                ended += int(result.deleted_count)
            if len(keys) < DELETE_BATCH:
                return ended
            last = keys[-1]

    def _delete_for_user_steps(self, user_id: str, keep: str | None) -> Steps[int]:
        query = self._live(user=str(user_id))
        if keep is not None:
            query["_id"] = {"$ne": keep}
        result = yield op("delete_many", query)
        return int(result.deleted_count)

    def _find_by_prefix_steps(
        self, prefix: str, limit: int
    ) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        query = self._live()
        if prefix:
            query["_id"] = {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}
        documents = yield op("find", query, PROJECTION, sort=[("_id", 1)], limit=limit)
        return self._items(documents)

    expired_order = [("expiresUs", 1)]

    def _expired_filter(self) -> dict[str, Any]:
        return {"expiresUs": {"$lte": now_us()}}

    def _expired_entry(self, key: str, document: Any) -> Expired:
        record = self._record(document)
        user_id = record.user_id if record else document.get("user")
        expires_at = from_us(int(document["expiresUs"]))
        return Expired(key, user_id, expires_at, record=record)

    # --- sync API -------------------------------------------------------------------

    def find_by_prefix(
        self, prefix: str, limit: int = 2
    ) -> builtins.list[tuple[str, SessionRecord]]:
        return self._drive(self._find_by_prefix_steps(prefix, limit), admin=True)

    def estimate_count(self) -> int | None:
        """The collection's document count from its metadata (expired ones included)."""
        return int(self._drive(single(op("estimated_document_count")), admin=True))

    # --- async API (pymongo.AsyncMongoClient, one per event loop) ----------------------
