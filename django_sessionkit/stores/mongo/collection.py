"""What the MongoDB stores share: :class:`MongoCollectionStore`, a store on one collection,
which runs a store's operations on the sync client or on the native async one, creates its
indexes, and removes expired sessions in the background when asked.

An operation is written once, as a generator of :class:`Op` (a collection method and its
arguments) that receives each result in turn; :meth:`MongoCollectionStore._drive` runs it on
the sync client and :meth:`MongoCollectionStore._adrive` on the async one. Every write an
operation makes is safe to send twice (see each store), so a command whose connection dropped
before its reply came is sent again, up to ``RETRY_ATTEMPTS`` times; a command that timed
out is never retried: the request gets its 503 at once and the circuit breaker opens.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar

import pymongo
from django.core.exceptions import ImproperlyConfigured
from pymongo.errors import AutoReconnect, OperationFailure, PyMongoError

from django_sessionkit.stores.base import Expired, StoreUnavailable
from django_sessionkit.stores.mongo import lock
from django_sessionkit.stores.mongo.connection import (
    CODEC_OPTIONS,
    aforget,
    async_client,
    forget,
    hide_password,
    parse,
    problems,
    sync_client,
)
from django_sessionkit.stores.steps import StepStore

logger = logging.getLogger("django_sessionkit")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Op:
    """One command: a collection method (``find`` answers with a list) and its arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def op(method: str, *args: Any, **kwargs: Any) -> Op:
    return Op(method, args, kwargs)


Steps = Generator[Op, Any, T]


def single(step: Op) -> Steps[Any]:
    """The steps of one command, answering with its result."""
    return (yield step)


#: How often, at most, pymongo checks a server it lost (its minimum heartbeat interval).
RECHECK = 0.5

#: Server error codes of a duplicate ``_id`` (11000, and 11001 from old servers).
DUPLICATE_KEY = frozenset({11000, 11001})


def error_code(exc: BaseException) -> int | None:
    return exc.code if isinstance(exc, OperationFailure) else None


class MongoCollectionStore(StepStore):
    """A store on one MongoDB collection: configuration, clients, indexes, auto-removal,
    and the drivers that run :data:`Steps` on the sync or the async client."""

    #: Defaults when neither OPTIONS nor LOCATION name them.
    default_database = "sessionkit"
    default_collection = "sessionkit_sessions"
    #: OPTIONS of this store on top of :data:`OPTION_TYPES`.
    own_options: Mapping[str, tuple[type, ...]] = {}

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location, options)
        found = self.check(location, self.options)
        if found:
            raise ImproperlyConfigured(f"{type(self).__name__}: {' '.join(found)}")
        self.config = parse(
            location,
            {k: v for k, v in self.options.items() if k not in self.own_options},
            database=self.default_database,
            collection=self.default_collection,
        )
        self._indexed = False  # indexes created (or found impossible) by this process
        self._locks_indexed = False  # the same, for the login locks' collection
        self._index_lock = threading.Lock()
        self._remover: threading.Thread | None = None
        self._stop_removing = threading.Event()

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> builtins.list[str]:
        return problems(location, options or {}, store=cls.__name__, own=cls.own_options)

    def describe(self) -> str:
        where = f"{self.config.database}.{self.config.collection}"
        return f"MongoDB {hide_password(self.config.location)} ({where})"

    # --- what a store provides --------------------------------------------------

    def index_models(self) -> builtins.list[pymongo.IndexModel]:
        """The indexes this store needs (created once per process, see ``CREATE_INDEXES``)."""
        return []

    # --- the purge ----------------------------------------------------------------

    #: The order in which the purge finds expired documents (``None``: the server's).
    expired_order: builtins.list[tuple[str, int]] | None = None

    def _expired_filter(self) -> dict[str, Any]:
        """The documents whose expiry has passed, in this layout."""
        raise NotImplementedError

    def _expired_entry(self, key: str, document: Any) -> Expired:
        """What the purge reports of the expired document it deleted."""
        raise NotImplementedError

    def _purge_batch_steps(
        self, batch_size: int, report: builtins.list[Expired] | None
    ) -> Steps[tuple[int, bool]]:
        """One batch: how many it removed, and whether more may follow. Without ``report``,
        one ``delete_many``; with it, each document goes by ``find_one_and_delete``, which
        answers with the document only to the one call that deleted it (so concurrent
        purges report each session once), at one round trip per session."""
        expired = self._expired_filter()
        found = yield op("find", expired, {"_id": 1}, sort=self.expired_order, limit=batch_size)
        keys = [document["_id"] for document in found]
        if not keys:
            return 0, False
        more = len(keys) == batch_size
        if report is None:
            # The expiry again: a session touched meanwhile is kept.
            result = yield op("delete_many", {"_id": {"$in": keys}, **expired})
            return int(result.deleted_count), more
        removed = 0
        for key in keys:
            document = yield op("find_one_and_delete", {"_id": key, **expired})
            if document is not None:  # else: another purge, a delete, or a touch got it first
                removed += 1
                report.append(self._expired_entry(key, document))
        return removed, more

    def purge_expired(
        self, batch_size: int = 1000, *, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        """Delete expired documents ``batch_size`` at a time (over the expiry's index),
        whether or not a TTL monitor runs."""
        batch_size = max(1, batch_size)
        while True:
            steps = self._purge_batch_steps(batch_size, report)
            removed, more = self._drive(steps, admin=True)
            if removed:
                yield removed
            if not more:
                return

    def count_expired(self) -> int | None:
        return int(self._drive(single(op("count_documents", self._expired_filter())), admin=True))

    def expiry_unreported(self) -> str | None:
        if self.config.auto_remove == "native":
            return (
                "AUTO_REMOVE is 'native': MongoDB's TTL monitor deletes expired sessions "
                "without telling anybody, so the purge reports only those it reaches first. "
                "Set AUTO_REMOVE to 'interval' (or 'disabled' and run purgesessions)."
            )
        return None

    def expiry_index(self) -> pymongo.IndexModel:
        """The TTL index for ``AUTO_REMOVE = "native"``: MongoDB's monitor deletes what it
        finds expired, about once a minute. The stores never depend on it."""
        return pymongo.IndexModel([("expires", 1)], expireAfterSeconds=0)

    # --- collections ----------------------------------------------------------

    def _indexes(self) -> builtins.list[pymongo.IndexModel]:
        models = self.index_models()
        if self.config.auto_remove == "native":
            models.append(self.expiry_index())
        return models

    def _collection(self) -> pymongo.collection.Collection[Any]:
        """The collection on this process's client; its indexes are created on first use
        (within ``ADMIN_TIMEOUT``: building them over a big collection may take a while)."""
        database = sync_client(self.config).get_database(
            self.config.database, codec_options=CODEC_OPTIONS
        )
        collection = database.get_collection(self.config.collection)
        if not self._indexed:
            with self._index_lock:
                if not self._indexed:
                    self._create_indexes(collection.create_indexes)
        self._keep_removing()
        return collection

    async def _acollection(self) -> pymongo.asynchronous.collection.AsyncCollection[Any]:
        """The collection on the running event loop's client (indexes as above)."""
        database = async_client(self.config).get_database(
            self.config.database, codec_options=CODEC_OPTIONS
        )
        collection = database.get_collection(self.config.collection)
        if not self._indexed:
            await self._acreate_indexes(collection)
        self._keep_removing()
        return collection

    def _create_indexes(self, create: Callable[[Any], Any]) -> None:
        models = self._indexes()
        if self.config.create_indexes and models:
            try:
                create(models)
            except OperationFailure as exc:
                self._index_failed(exc)
        self._indexed = True

    async def _acreate_indexes(self, collection: Any) -> None:
        models = self._indexes()
        if self.config.create_indexes and models:
            try:
                await collection.create_indexes(models)
            except OperationFailure as exc:
                self._index_failed(exc)
        self._indexed = True

    def _index_failed(self, exc: OperationFailure) -> None:
        # The store is correct without its indexes (only slower): say so once, go on.
        logger.error(
            "Session store %s could not create its indexes (%s); it works without them, but "
            "listings and purges read the whole collection. Create them by hand, or fix the "
            "conflict (see docs/stores-mongodb.md).",
            self.describe(),
            exc,
        )

    # --- AUTO_REMOVE = "interval" ------------------------------------------------

    def _keep_removing(self) -> None:
        """With ``AUTO_REMOVE = "interval"``: a daemon thread of this process runs the
        batched purge every ``AUTO_REMOVE_INTERVAL`` seconds (connect-mongo's
        ``autoRemove: "interval"``), from the first use of the store until :meth:`close`."""
        if self.config.auto_remove != "interval":
            return
        if self._remover is not None and self._remover.is_alive():
            return
        with self._index_lock:
            if self._remover is None or not self._remover.is_alive():
                self._start_remover()

    def _start_remover(self) -> None:
        store = weakref.ref(self)
        stop, interval = self._stop_removing, self.config.auto_remove_interval

        def remove() -> None:
            from django_sessionkit import lifecycle  # its events import the engine

            while not stop.wait(interval):
                alive = store()
                if alive is None:
                    return
                try:
                    removed = sum(lifecycle.purge(alive))
                except Exception as exc:  # a sick store: try again next time
                    logger.warning("Session store %s: auto-removal failed: %s", alive, exc)
                else:
                    if removed:
                        logger.info("Session store %s: removed %d expired.", alive, removed)
                del alive

        self._remover = threading.Thread(
            target=remove, name="sessionkit-mongo-auto-remove", daemon=True
        )
        self._remover.start()

    # --- driving operations -------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.describe(), exc)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.backoff_cap, self.config.backoff_base * (2**attempt))
        return random.uniform(0, cap)

    def _retryable(self, exc: PyMongoError, attempt: int) -> bool:
        """A dropped connection (not a timeout) with attempts left."""
        return (
            isinstance(exc, AutoReconnect)
            and not exc.timeout
            and attempt < self.config.retry_attempts
        )

    def _within(self, admin: bool, attempt: int) -> contextlib.AbstractContextManager[Any]:
        """The request path: each attempt at a command within ``TIMEOUT`` (pymongo's
        client-side operation timeout: finding the server, connecting, the reply). A retry
        may wait :data:`RECHECK` more: after a dropped connection pymongo finds the server
        again before it sends anything, and it looks at most every half second. The admin:
        the client's own timeouts (a reply may take up to ``ADMIN_TIMEOUT``)."""
        if admin:
            return contextlib.nullcontext()
        return pymongo.timeout(self.config.timeout + (RECHECK if attempt else 0.0))

    def _call(self, collection: Any, step: Op, admin: bool) -> Any:
        attempt = 0
        while True:
            try:
                with self._within(admin, attempt):
                    result = getattr(collection, step.method)(*step.args, **step.kwargs)
                    return builtins.list(result) if step.method == "find" else result
            except PyMongoError as exc:
                if not self._retryable(exc, attempt):
                    raise
                time.sleep(self._backoff(attempt))
                attempt += 1

    async def _acall(self, collection: Any, step: Op, admin: bool) -> Any:
        attempt = 0
        while True:
            try:
                with self._within(admin, attempt):
                    if step.method == "find":
                        return await collection.find(*step.args, **step.kwargs).to_list(None)
                    return await getattr(collection, step.method)(*step.args, **step.kwargs)
            except PyMongoError as exc:
                if not self._retryable(exc, attempt):
                    raise
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    def _drive(self, steps: Steps[T], *, admin: bool = False) -> T:
        """Run ``steps`` on the sync client; ``admin``: listings, counts and batches, which
        may take longer than the request path's ``TIMEOUT`` (see :meth:`_within`)."""
        with self.guarded():
            try:
                collection = self._collection()
                step = next(steps)
                while True:
                    try:
                        result = self._call(collection, step, admin)
                    except PyMongoError as exc:
                        step = steps.throw(exc)  # the steps may expect it (a duplicate key)
                    else:
                        step = steps.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            except PyMongoError as exc:
                raise self._unavailable(exc) from exc

    async def _adrive(self, steps: Steps[T], *, admin: bool = False) -> T:
        with self.guarded():
            try:
                collection = await self._acollection()
                step = next(steps)
                while True:
                    try:
                        result = await self._acall(collection, step, admin)
                    except PyMongoError as exc:
                        step = steps.throw(exc)
                    else:
                        step = steps.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            except PyMongoError as exc:
                raise self._unavailable(exc) from exc

    # --- the per-user login lock (MAX_SESSIONS_POLICY = "refuse", see .lock) ----------

    locks_users = True

    @property
    def lock_collection(self) -> str:
        return f"{self.config.collection}_locks"

    def user_locked(self, user_id: str, work: Callable[[], T]) -> T:
        database = sync_client(self.config).get_database(
            self.config.database, codec_options=CODEC_OPTIONS
        )
        locks = database.get_collection(self.lock_collection)
        if not self._locks_indexed:
            self._locks_indexed = True
            if self.config.create_indexes:
                with contextlib.suppress(PyMongoError):  # only a sweep of crashed holders
                    locks.create_indexes([lock.EXPIRY_INDEX])
        return lock.locked(self, locks, self.config.timeout, user_id, work)

    async def auser_locked(self, user_id: str, work: Callable[[], Awaitable[T]]) -> T:
        database = async_client(self.config).get_database(
            self.config.database, codec_options=CODEC_OPTIONS
        )
        locks = database.get_collection(self.lock_collection)
        if not self._locks_indexed:
            self._locks_indexed = True
            if self.config.create_indexes:
                with contextlib.suppress(PyMongoError):
                    await locks.create_indexes([lock.EXPIRY_INDEX])
        return await lock.alocked(self, locks, self.config.timeout, user_id, work)

    # --- connections ------------------------------------------------------------

    def close(self) -> None:
        self._stop_removing.set()
        self._stop_removing, self._remover = threading.Event(), None
        forget(self.config)

    async def aclose(self) -> None:
        with contextlib.suppress(RuntimeError):
            await aforget(self.config)
