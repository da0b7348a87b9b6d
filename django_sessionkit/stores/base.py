"""The one storage interface every sessionkit store implements.

A store never sees a raw session id. The engine hands it a *key*: the SHA-256
hex digest of the id (``COMPAT="express"`` is the one exception, where the
key is the id itself because connect-redis's layout demands it).

Every method has an async twin with an ``a`` prefix. The defaults here run the
sync method in a thread; a store with a native async client overrides them.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import dataclasses
import functools
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, TypeAlias, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.utils import timezone

from django_sessionkit.stores.breaker import CircuitBreaker, CircuitOpen

__all__ = [
    "Changes",
    "CorruptSession",
    "CreateError",
    "Cursor",
    "Expired",
    "IPFilter",
    "IPNetwork",
    "SessionRecord",
    "Store",
    "StoreUnavailable",
    "UpdateError",
]


T = TypeVar("T")

#: Times at rest and in page links are counted from here, in whole microseconds.
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def utcnow() -> datetime:
    """Now, aware, in UTC, whatever ``USE_TZ`` says.

    Session records always carry aware times; only the database store converts them,
    at its boundary, to the naive local times Django keeps when ``USE_TZ = False``.
    """
    return datetime.now(dt_timezone.utc)


def aware(moment: datetime) -> datetime:
    """``moment`` made aware: a naive time is read in the current time zone, as Django
    reads naive times under ``USE_TZ = False``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def to_us(moment: datetime) -> int:
    """``moment`` as whole microseconds since :data:`EPOCH`, without float rounding
    (a naive time is read as :func:`aware` reads it)."""
    delta = aware(moment) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The aware UTC time ``us`` microseconds after :data:`EPOCH`."""
    return EPOCH + timedelta(microseconds=us)


#: Seconds a login waits for its user's lock (``MAX_SESSIONS_POLICY = "refuse"``) before it
#: gets a 503; the lock is held for a count and a save, a few milliseconds.
USER_LOCK_WAIT = 1.0
#: Seconds after which a lock whose holder crashed lapses (Redis and MongoDB; a database
#: lock ends with its transaction or connection).
USER_LOCK_LAPSE = 10.0
#: Seconds between two attempts at a lock that is held.
USER_LOCK_POLL = 0.01


class CorruptSession(ValueError):
    """Stored session data that cannot be decoded; the session is treated as missing."""


def encode_data(data: Mapping[str, Any]) -> str:
    """Serialise session data to compact JSON (the format every store keeps)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def decode_data(text: str | bytes) -> dict[str, Any]:
    """Parse stored session data; raise :class:`CorruptSession` if it is not a JSON object."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nested past what the parser can follow (~1000 levels)
        raise CorruptSession(f"session data is not valid JSON: {exc!r:.200}") from exc
    if not isinstance(data, dict):
        raise CorruptSession(f"session data is a JSON {type(data).__name__}, not an object")
    return data


class StoreUnavailable(Exception):
    """The store could not be reached or answered with an error.

    The middleware turns it into a 503 response with ``Retry-After`` and one
    log line; it never falls back to a fresh, empty session.
    """

    def __init__(self, store: str, error: BaseException | str) -> None:
        self.store = store
        self.error = error
        super().__init__(f"session store {store} is unavailable: {error}")

    @property
    def timed_out(self) -> bool:
        """Whether the store did not answer in time (rather than refusing or failing)."""
        error: BaseException | str | None = self.error
        seen = 0
        while isinstance(error, BaseException) and seen < 5:
            if _is_timeout(error):
                return True
            error, seen = error.__cause__ or error.__context__, seen + 1
        return False


#: Error names and codes that mean "did not answer in time": socket and redis-py
#: timeouts; PostgreSQL's lock_timeout (55P03) and statement_timeout (57014); MySQL's and
#: MariaDB's lock wait (1205) and statement time limits (1969, 3024); SQLite's busy lock.
#: pymongo's errors say it themselves (``PyMongoError.timeout``).
_TIMEOUT_NAMES = frozenset({"TimeoutError", "timeout", "QueryCanceled", "LockNotAvailable"})
_TIMEOUT_CODES = frozenset({"55P03", "57014", 1205, 1969, 3024})


def _is_timeout(error: BaseException) -> bool:
    if any(cls.__name__ in _TIMEOUT_NAMES for cls in type(error).__mro__):
        return True
    if getattr(error, "timeout", None) is True:
        return True
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if code in _TIMEOUT_CODES or (error.args and error.args[0] in _TIMEOUT_CODES):
        return True
    return "database is locked" in str(error)


def user_lock_busy(store: Store, user_id: str) -> StoreUnavailable:
    """The error of a login whose user's lock stayed held for :data:`USER_LOCK_WAIT`.

    Raised outside :meth:`Store.guarded`: the store answered (the lock is busy), so the
    circuit breaker does not count it as a failure; the middleware answers 503 at once."""
    return StoreUnavailable(
        store.describe(),
        f"the login lock of user {user_id!r} stayed held for {USER_LOCK_WAIT:g} s "
        "(MAX_SESSIONS_POLICY = 'refuse'); another login of that user did not finish",
    )


@dataclasses.dataclass
class Changes:
    """What one request did to a session's data.

    ``set``: keys set or changed (their new values); ``removed``: keys deleted;
    ``increments``: numeric keys changed by ``SessionStore.incr()``, as deltas, so
    that a save merged onto a newer copy adds to the newer count instead of
    overwriting it. A key is in at most one of the three.

    ``loaded``: the record as the request loaded it, when known. A store may leave
    out of its write the metadata that is still what was loaded (the Redis store
    then rewrites only expiry and last activity on most saves).
    """

    set: dict[str, Any] = dataclasses.field(default_factory=dict)
    removed: builtins.set[str] = dataclasses.field(default_factory=builtins.set)
    increments: dict[str, int | float] = dataclasses.field(default_factory=dict)
    loaded: SessionRecord | None = dataclasses.field(default=None, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.set or self.removed or self.increments)

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``data`` with these changes applied on top."""
        merged = {k: v for k, v in data.items() if k not in self.removed}
        merged.update(self.set)
        for key, delta in self.increments.items():
            current = merged.get(key)
            base = (
                current
                if isinstance(current, (int, float)) and not isinstance(current, bool)
                else 0
            )
            merged[key] = base + delta
        return merged


@dataclasses.dataclass
class SessionRecord:
    """A session's data and what we know about it.

    ``version`` counts the writes of ``data``; a save names the version it
    started from so that concurrent saves can be merged instead of lost.
    """

    data: dict[str, Any]
    expires_at: datetime
    created_at: datetime
    last_seen: datetime
    user_id: str | None = None
    ip: str | None = None
    user_agent: str = ""
    version: int = 0

    def with_data(self, data: dict[str, Any], version: int) -> SessionRecord:
        return dataclasses.replace(self, data=data, version=version)


@dataclasses.dataclass(frozen=True)
class Cursor:
    """A position in the listing order: most recently seen first, then by key.

    ``Store.list(after=cursor)`` returns the sessions strictly after it: seen
    before ``last_seen``, or seen at that very moment with a key greater than
    ``key``. ``key`` is a bound, not necessarily a stored key: the admin, which
    never puts a whole key in a page, passes a key prefix followed by ``"g"``
    (greater than any hex digit), which is after every key with that prefix.
    """

    last_seen: datetime
    key: str

    @classmethod
    def of(cls, item: tuple[str, SessionRecord]) -> Cursor:
        """The cursor of a listed session: ``list(after=it)`` goes on after that row."""
        key, record = item
        return cls(record.last_seen, key)

    def comes_before(self, key: str, record: SessionRecord) -> bool:
        """True when ``(key, record)`` comes after this cursor in the listing order."""
        return record.last_seen < self.last_seen or (
            record.last_seen == self.last_seen and key > self.key
        )


@dataclasses.dataclass(frozen=True)
class Expired:
    """A session a purge removed because it had expired (see :meth:`Store.purge_expired`).

    ``expires_at``: when it expired; ``last_seen`` and ``created_at``: its last activity
    and its start, when the store still knew them; ``record``: the whole record, when the
    store still had it (a store whose records expire by themselves keeps only what its
    indexes hold).
    """

    key: str
    user_id: str | None
    expires_at: datetime
    last_seen: datetime | None = None
    created_at: datetime | None = None
    record: SessionRecord | None = None


IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What ``Store.list(ip=…)`` accepts: an address or a network, as text or an ``ipaddress`` object.
IPFilter: TypeAlias = str | ipaddress.IPv4Address | ipaddress.IPv6Address | IPNetwork


def as_network(ip: IPFilter) -> IPNetwork:
    """The network an IP filter stands for: an address is its own ``/32`` or ``/128``.

    Text is an address (``192.0.2.7``, ``2001:db8::1``) or a network in CIDR form
    (``10.0.0.0/8``; host bits are ignored: ``10.1.2.3/8`` is ``10.0.0.0/8``).
    Raises ``ValueError`` for anything else.
    """
    if isinstance(ip, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return ip
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(ip)
    return ipaddress.ip_network(str(ip).strip(), strict=False)


def in_network(ip: str | None, network: IPNetwork) -> bool:
    """True when the stored address ``ip`` lies in ``network`` (False for none or garbage)."""
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in network
    except ValueError:
        return False


def matches(
    record: SessionRecord,
    *,
    user_id: str | None = None,
    signed_in: bool | None = None,
    network: IPNetwork | None = None,
) -> bool:
    """True when ``record`` passes the filters of :meth:`Store.list`."""
    if user_id is not None and record.user_id != user_id:
        return False
    if signed_in is not None and (record.user_id is not None) != signed_in:
        return False
    return network is None or in_network(record.ip, network)


@functools.lru_cache(maxsize=4096)
def ip_code(ip: str | None) -> str:
    """An address as the indexes order it: ``4`` or ``6`` and its bytes in hex; ``-`` for none.

    Codes of one family have one length, so their lexical order is the numeric one and a
    network is the range from its first to its last address.
    """
    if not ip:
        return "-"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "-"
    return f"{address.version}{address.packed.hex()}"


def filtered_page(
    items: Iterable[tuple[str, SessionRecord]],
    *,
    signed_in: bool | None,
    network: IPNetwork | None,
    after: Cursor | None,
    limit: int,
) -> builtins.list[tuple[str, SessionRecord]]:
    """One page of :meth:`Store.list` from sessions already in hand (a user's few, or a
    store with no index): the filters, the keyset cursor, the listing order, the limit."""
    found = [
        (key, record)
        for key, record in items
        if matches(record, signed_in=signed_in, network=network)
        and (after is None or after.comes_before(key, record))
    ]
    found.sort(key=lambda item: (-to_us(item[1].last_seen), item[0]))
    return found[:limit]


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Decorate a store method so that it runs under :meth:`Store.guarded`."""

    @functools.wraps(method)
    def run(self: Store, *args: Any, **kwargs: Any) -> T:
        with self.guarded():
            return method(self, *args, **kwargs)

    return run


#: Set while a call runs under :meth:`Store.guarded` (in this thread or task).
_guarded: contextvars.ContextVar[bool] = contextvars.ContextVar("sessionkit_guarded", default=False)


class Store:
    """Base class of the storage backends.

    Subclasses implement the sync methods; :meth:`check` validates the
    configuration for the system checks (``sessionkit.E…``), so a wrong
    ``STORE`` fails at start-up rather than at the first request.
    """

    #: Human-readable name used in logs and errors.
    label = "store"

    #: True when :meth:`find_by_prefix` uses an index instead of reading every session.
    indexes_key_prefixes = False

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        self.location = location
        self.options = dict(options or {})

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> list[str]:
        """Return a message for each problem in this configuration (empty if fine)."""
        return []

    def describe(self) -> str:
        """Where this store keeps its data, with any password hidden."""
        return f"{type(self).__name__}({self.location!r})"

    # --- failing fast -------------------------------------------------------

    @functools.cached_property
    def breaker(self) -> CircuitBreaker:
        """This process's circuit breaker for this store (see :mod:`.breaker`)."""
        return CircuitBreaker(self.describe(), self.options)

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Run one call to the store under the circuit breaker.

        While the circuit is open this raises :class:`StoreUnavailable` at once. A
        :class:`StoreUnavailable` raised inside counts as a failure; anything else means
        the store answered. Nested uses (a save that runs a statement) count once.
        """
        if _guarded.get():
            yield
            return
        breaker = self.breaker
        try:
            breaker.admit()
        except CircuitOpen as exc:
            raise StoreUnavailable(self.describe(), exc) from None
        token = _guarded.set(True)
        try:
            yield
        except StoreUnavailable as exc:
            breaker.failed(timed_out=exc.timed_out)
            raise
        except BaseException:
            breaker.succeeded()
            raise
        else:
            breaker.succeeded()
        finally:
            _guarded.reset(token)

    # --- the contract -----------------------------------------------------

    def load(self, key: str) -> SessionRecord | None:
        """The live record for ``key``, or ``None`` when missing or expired."""
        raise NotImplementedError

    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        """Write ``record`` under ``key`` and return what was stored.

        ``must_create=True`` inserts; an existing key raises :class:`CreateError`
        and is left untouched. Otherwise the record must exist (else
        :class:`UpdateError`: a session deleted meanwhile is never re-created).
        When the stored ``version`` is no longer ``record.version``, another
        request saved in between: the store applies ``changes`` (the keys this
        request set, removed or incremented) on top of the newer data, atomically,
        so neither save's keys are lost.
        ``changes=None`` means "this request replaces the whole data".
        The returned record carries the new version.
        """
        raise NotImplementedError

    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        """Move expiry and last activity without rewriting the data.

        Returns ``False`` (and changes nothing) when the session is missing or
        already expired.
        """
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return self.load(key) is not None

    def count(self, *, user_id: str | None = None) -> int:
        """Live sessions, optionally only those of one user."""
        raise NotImplementedError

    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> builtins.list[tuple[str, SessionRecord]]:
        """One page of live sessions: most recently seen first, then by key.

        Filters combine: ``user_id`` (one user's sessions), ``signed_in`` (``True``
        only signed-in sessions, ``False`` only anonymous ones), ``ip`` (an address,
        or a network: see :func:`as_network`). ``after`` is the :class:`Cursor` of the
        last row of the previous page (keyset paging: no offsets, so a deep page costs
        what the first one does). Fewer than ``limit`` rows means there are no more.
        A store answers each filter from an index: the work is in proportion to the
        page, not to the number of sessions (see each store's documentation for the
        exceptions).
        """
        raise NotImplementedError

    def iter_all(self, *, batch_size: int = 500) -> Iterator[tuple[str, SessionRecord]]:
        """Every live session, fetched ``batch_size`` at a time, most recently seen first.

        Each page goes on after the last row of the one before (a :class:`Cursor`): a
        session seen while this runs moves to the front, behind the cursor, so it may be
        left out; none is returned twice.
        """
        after = None
        while True:
            page = self.list(after=after, limit=batch_size)
            yield from page
            if len(page) < batch_size:
                return
            after = Cursor.of(page[-1])

    def delete_all(self, *, keep: str | None = None) -> int:
        """End every live session that existed when this started, except ``keep``.

        Returns how many were ended. Sessions created meanwhile are left alone. This
        default walks :meth:`iter_all` and deletes one session at a time; stores override
        it with one statement (database) or batches over their index (Redis).
        """
        started = utcnow()
        ended = 0
        for key, record in self.iter_all():  # a deleted row is behind the cursor: safe
            if key != keep and record.created_at <= started:
                self.delete(key)
                ended += 1
        return ended

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        """End every session of one user except ``keep``; return how many."""
        raise NotImplementedError

    #: True when :meth:`user_locked` is implemented (``MAX_SESSIONS_POLICY = "refuse"``).
    locks_users = False

    def user_locked(self, user_id: str, work: Callable[[], T]) -> T:
        """Run ``work()`` while holding ``user_id``'s login lock, and return what it returns.

        No other ``user_locked`` call for that user runs meanwhile, in any process, and what
        ``work`` wrote is visible to the next holder: a login counts the user's sessions
        and saves its own under it, so N + 1 simultaneous logins leave exactly N. A lock
        still held after :data:`USER_LOCK_WAIT` seconds raises :class:`StoreUnavailable`
        (see :func:`user_lock_busy`); a holder that crashed loses it after
        :data:`USER_LOCK_LAPSE` seconds at most."""
        raise NotImplementedError(
            f"{type(self).__name__} has no per-user lock, which "
            "SESSIONKIT['MAX_SESSIONS_POLICY'] = 'refuse' needs"
        )

    async def auser_locked(self, user_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """The async twin of :meth:`user_locked`. This default runs the sync lock in a
        thread and ``work`` back on the event loop; the store's own async methods that
        ``work`` awaits (``sync_to_async``, thread-sensitive) then run in that very thread,
        inside the lock's transaction. Stores with a native async client override it."""
        return await sync_to_async(self.user_locked)(user_id, async_to_sync(work))

    def find_by_prefix(
        self, prefix: str, limit: int = 2
    ) -> builtins.list[tuple[str, SessionRecord]]:
        """Up to ``limit`` live sessions whose key starts with ``prefix`` (admin, commands).

        This default reads every session; stores with an ordered key index override it.
        """
        found = []
        for key, record in self.iter_all():
            if key.startswith(prefix):
                found.append((key, record))
                if len(found) >= limit:
                    break
        return found

    def estimate_count(self) -> int | None:
        """A cheap approximate number of sessions, or ``None`` when there is none."""
        return None

    def count_expired(self) -> int | None:
        """Expired sessions still held (for a purge's dry run), or ``None`` if unknown."""
        return None

    def reindex(self, batch_size: int = 500) -> Iterator[int]:
        """Move what an earlier release indexed into this release's layout, a batch at a
        time, yielding how many sessions each batch moved. Nothing to do by default."""
        return iter(())

    def purge_expired(
        self, batch_size: int = 1000, *, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        """Remove expired records in batches, yielding how many each batch removed.

        ``report``: a list to which each batch appends the sessions it removed, before it
        yields. A session is appended by the one purge that removed it, however many run at
        once, and never when it was ended otherwise (deleted, or touched back to life
        meanwhile): the ``session_ended`` events of expiry come from here. Without it a
        store may take a cheaper path that does not tell which sessions it removed.
        """
        raise NotImplementedError

    def expiry_unreported(self) -> str | None:
        """Why :meth:`purge_expired` cannot report every session that expires (``None``: it
        can), for the check that warns a project listening to ``session_ended``."""
        return None

    def close(self) -> None:
        """Release connections (tests, shutdown)."""

    async def aclose(self) -> None:
        """Release the async connections of the running event loop."""

    # --- async twins ------------------------------------------------------

    async def aload(self, key: str) -> SessionRecord | None:
        return await sync_to_async(self.load)(key)

    async def asave(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return await sync_to_async(self.save)(key, record, must_create=must_create, changes=changes)

    async def atouch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return await sync_to_async(self.touch)(key, expires_at, last_seen)

    async def adelete(self, key: str) -> None:
        await sync_to_async(self.delete)(key)

    async def aexists(self, key: str) -> bool:
        return await sync_to_async(self.exists)(key)

    async def acount(self, *, user_id: str | None = None) -> int:
        return await sync_to_async(self.count)(user_id=user_id)

    async def alist(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> builtins.list[tuple[str, SessionRecord]]:
        return await sync_to_async(self.list)(
            user_id=user_id, signed_in=signed_in, ip=ip, after=after, limit=limit
        )

    async def adelete_all(self, *, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_all)(keep=keep)

    async def adelete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return await sync_to_async(self.delete_for_user)(user_id, keep=keep)
