"""DatabaseStore: sessions in a table of any Django database (the default store).

``LOCATION`` is the database alias (``"default"`` when unset). Queries per
call: ``load`` 1, ``save`` 1 (an insert, or an update conditional on the
version), ``touch`` 1 (an update that does not carry the data), ``delete`` 1.
Only a concurrent save costs more: a re-read and a second update.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import DateTimeField, F, Q, QuerySet
from django.utils import timezone

from django_sessionkit.models import Session
from django_sessionkit.stores import breaker, sql_timeouts
from django_sessionkit.stores.base import (
    USER_LOCK_POLL,
    USER_LOCK_WAIT,
    Changes,
    CorruptSession,
    CreateError,
    Cursor,
    Expired,
    IPFilter,
    IPNetwork,
    SessionRecord,
    Store,
    StoreUnavailable,
    UpdateError,
    as_network,
    decode_data,
    encode_data,
    user_lock_busy,
)

logger = logging.getLogger("django_sessionkit")


_LOAD_FIELDS = (
    "key",
    "data",
    "version",
    "expires_at",
    "created_at",
    "last_seen",
    "user_id",
    "ip",
    "user_agent",
)


_EXPIRES_AT = cast("DateTimeField[Any, Any]", Session._meta.get_field("expires_at"))

#: Columns a save writes, in the order of the statements below.
_WRITE_FIELDS = ("data", "version", "expires_at", "user_id", "ip", "user_agent", "last_seen")
_INSERT_FIELDS = ("key", *_WRITE_FIELDS, "created_at")
_FIELDS = {field.name: field for field in Session._meta.concrete_fields}

#: The databases whose per-user login lock this store knows (MAX_SESSIONS_POLICY = "refuse").
LOCKING_VENDORS = ("postgresql", "mysql", "sqlite")

T = TypeVar("T")


class DatabaseStore(Store):
    label = "database"
    indexes_key_prefixes = True  # the primary key's index serves LIKE 'prefix%'

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location or "default", options)
        self.alias: str = self.location
        self._load: tuple[str, bool, Any] | None = None
        self._sql: dict[str, str] | None = None
        self._timeouts = sql_timeouts.Timeouts(self.options)

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> list[str]:
        alias = location or "default"
        problems = []
        if alias not in connections.settings:
            known = ", ".join(sorted(connections.settings)) or "none"
            problems.append(
                f"LOCATION {alias!r} is not a database alias in DATABASES (known: {known})."
            )
        accepted = {**sql_timeouts.OPTIONS, **breaker.OPTIONS}
        if unknown := sorted(set(options) - set(accepted)):
            problems.append(
                f"OPTIONS {unknown} are not accepted: DatabaseStore takes {', '.join(accepted)}."
            )
        return problems + sql_timeouts.problems(options) + breaker.problems(options)

    def describe(self) -> str:
        db = connections.settings[self.alias]
        return f"database {self.alias!r} ({db.get('ENGINE', '?')}, {db.get('NAME', '?')})"

    @property
    def _rows(self) -> QuerySet[Session]:
        rows: QuerySet[Session] = Session.objects.using(self.alias)
        return rows

    @contextlib.contextmanager
    def _errors(self, *, admin: bool = False) -> Iterator[None]:
        """Database errors as :class:`StoreUnavailable`, under the circuit breaker.

        ``admin``: the ORM queries inside run under the lock limit too (see
        :meth:`.sql_timeouts.Timeouts.admin_queries`); the request path's own statements set
        their limits themselves."""
        queries = (
            self._timeouts.admin_queries(connections[self.alias])
            if admin
            else contextlib.nullcontext()
        )
        with self.guarded(), queries:
            try:
                yield
            except (OperationalError, InterfaceError) as exc:
                if _refused_data(exc):  # the database is fine; this value is not
                    raise
                raise StoreUnavailable(self.describe(), exc) from exc

    # --- contract ---------------------------------------------------------

    def load(self, key: str) -> SessionRecord | None:
        sql, key_first, compiler = self._load_query()
        connection = connections[self.alias]
        now = _EXPIRES_AT.get_db_prep_value(timezone.now(), connection)
        params = [key, now] if key_first else [now, key]
        with self._errors(), connection.cursor() as cursor:
            self._timeouts.execute(connection, cursor, sql, params)
            found = cursor.fetchone()
        if found is None:
            return None
        values = next(iter(compiler.results_iter(results=[[found]])))
        return self._record(Session(**dict(zip(_LOAD_FIELDS, values, strict=True))))

    def _load_query(self) -> tuple[str, bool, Any]:
        """The load query, compiled once per store: building it through the ORM on every
        request cost ~10x the query itself. The compiler is kept for its converters, which
        turn the database's values into Python ones exactly as the ORM would; they read the
        backend's settings, never its connection, so any thread may use them. (It was kept
        per thread until Django's ASGI handler, which runs each request's sync code in a
        new thread, showed that this rebuilt it on every request.)"""
        cached = self._load
        if cached is None:
            marker = "\0sessionkit-key"
            query = self._rows.filter(key=marker, expires_at__gt=timezone.now()).values_list(
                *_LOAD_FIELDS
            )[:1]
            compiler = query.query.get_compiler(self.alias)
            sql, params = compiler.as_sql()
            if len(params) != 2 or marker not in params:  # the layout load() fills in
                raise DatabaseError(f"unexpected load query parameters: {params!r}")
            cached = self._load = (sql, params[0] == marker, compiler)
        return cached

    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        with self._errors():
            if must_create:
                return self._insert(key, record)
            return self._update(key, record, changes)

    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        params = [
            ("expires_at", expires_at),
            ("last_seen", last_seen),
            ("key", key),
            ("expires_at", timezone.now()),
        ]
        return self._execute("touch", params) > 0

    def delete(self, key: str) -> None:
        self._execute("delete", [("key", key)])

    def exists(self, key: str) -> bool:
        with self._errors():
            return bool(self._rows.filter(key=key, expires_at__gt=timezone.now()).exists())

    def count(self, *, user_id: str | None = None) -> int:
        with self._errors(admin=True):
            return int(self._live(user_id).count())

    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> list[tuple[str, SessionRecord]]:
        if limit <= 0:
            return []
        rows = self._live(user_id)
        if signed_in is not None:
            rows = rows.filter(user_id__isnull=not signed_in)
        if ip is not None:
            rows = rows.filter(self._ip_condition(as_network(ip)))
        if after is not None:
            # "last_seen <= x" on its own too: the range an index scan starts from.
            rows = rows.filter(
                Q(last_seen__lte=after.last_seen),
                Q(last_seen__lt=after.last_seen) | Q(key__gt=after.key),
            )
        rows = rows.order_by("-last_seen", "key")[:limit]
        with self._errors(admin=True):
            return [(row.key, record) for row in rows if (record := self._record(row)) is not None]

    def delete_all(self, *, keep: str | None = None) -> int:
        """One DELETE of every live row (but ``keep``); rows inserted meanwhile are not
        seen by the statement."""
        rows = self._live(None)
        if keep is not None:
            rows = rows.exclude(key=keep)
        with self._errors(admin=True):
            return self._delete(rows)

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        rows = self._rows.filter(user_id=user_id)
        if keep is not None:
            rows = rows.exclude(key=keep)
        with self._errors(admin=True):
            deleted = self._delete(rows)
        return int(deleted)

    # --- the per-user login lock (MAX_SESSIONS_POLICY = "refuse") ------------------------

    locks_users = True

    def user_locked(self, user_id: str, work: Callable[[], T]) -> T:
        """PostgreSQL: a transaction-scoped advisory lock, so that it ends with the commit
        that makes the login's session visible (inside a transaction of the project's own,
        ``ATOMIC_REQUESTS``, with that transaction). MySQL and MariaDB: ``GET_LOCK``, released
        once ``work``'s statements have committed. SQLite: a transaction that starts with a
        write, whose write lock on the database is the lock."""
        connection = connections[self.alias]
        name = f"sessionkit:{Session._meta.db_table}:{user_id}"
        if connection.vendor == "mysql":
            return self._mysql_locked(connection, name, user_id, work)
        if connection.vendor not in ("postgresql", "sqlite"):
            raise NotImplementedError(
                f"the database store has no per-user lock on {connection.vendor}, which "
                "SESSIONKIT['MAX_SESSIONS_POLICY'] = 'refuse' needs (PostgreSQL, MySQL, "
                "MariaDB and SQLite have one)"
            )
        with self._errors(), transaction.atomic(using=self.alias):
            if self._took_lock(connection, name):
                return work()
        raise user_lock_busy(self, user_id)

    def _took_lock(self, connection: Any, name: str) -> bool:
        """Take the lock inside the transaction now open; ``False`` if it stayed held."""
        if connection.vendor == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            deadline = time.monotonic() + USER_LOCK_WAIT
            with connection.cursor() as cursor:
                while True:  # polled: no lock_timeout to set (and leak into an outer transaction)
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
                    if cursor.fetchone()[0]:
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(USER_LOCK_POLL)
        table = connection.ops.quote_name(Session._meta.db_table)
        with connection.cursor() as cursor:
            raw = connection.connection  # its own statements, as in sql_timeouts
            (previous,) = raw.execute("PRAGMA busy_timeout").fetchone()
            raw.execute(f"PRAGMA busy_timeout = {math.ceil(USER_LOCK_WAIT * 1000)}")
            try:  # a write that changes nothing: this transaction now holds the write lock
                cursor.execute(f"UPDATE {table} SET version = version WHERE 1 = 0")
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                return False
            finally:
                raw.execute(f"PRAGMA busy_timeout = {int(previous)}")
        return True

    def _mysql_locked(self, connection: Any, name: str, user_id: str, work: Callable[[], T]) -> T:
        # GET_LOCK names are at most 64 characters.
        name = "sessionkit:" + hashlib.sha1(name.encode()).hexdigest()
        with self._errors(), connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, max(1, math.ceil(USER_LOCK_WAIT))])
            (obtained,) = cursor.fetchone()
        if obtained != 1:
            raise user_lock_busy(self, user_id)
        try:
            return work()  # each statement commits as it runs (unless the project's own
            # transaction is open: then the next holder may not see this one's session yet)
        finally:
            try:
                with self._errors(), connection.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", [name])
            except StoreUnavailable as exc:  # the connection is gone, and the lock with it
                logger.warning("Could not release the login lock of user %r: %s", user_id, exc)

    def find_by_prefix(
        self, prefix: str, limit: int = 2
    ) -> builtins.list[tuple[str, SessionRecord]]:
        rows = self._live(None).filter(key__startswith=prefix).order_by("key")[:limit]
        with self._errors(admin=True):
            return [(row.key, rec) for row in rows if (rec := self._record(row)) is not None]

    def estimate_count(self) -> int | None:
        """PostgreSQL's planner estimate (no full-table COUNT); ``None`` elsewhere."""
        connection = connections[self.alias]
        if connection.vendor != "postgresql":
            return None
        with self._errors(admin=True), connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [Session._meta.db_table],
            )
            row = cursor.fetchone()
        return None if row is None or row[0] < 0 else int(row[0])

    def count_expired(self) -> int | None:
        with self._errors(admin=True):
            return int(self._rows.filter(expires_at__lte=timezone.now()).count())

    def purge_expired(
        self, batch_size: int = 1000, *, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        if report is not None:
            yield from self._purge_reporting(batch_size, report)
            return
        # PostgreSQL and SQLite take the batch as one DELETE with a LIMITed subquery (over
        # the expires_at index); others (MySQL refuses LIMIT there) select the keys first.
        one_statement = connections[self.alias].vendor in ("postgresql", "sqlite")
        while True:
            now = timezone.now()
            expired = self._rows.filter(expires_at__lte=now).order_by("expires_at")
            with self._errors(admin=True):
                if one_statement:
                    # expires_at again outside: a row touched meanwhile is re-checked, kept.
                    batch = self._rows.filter(
                        key__in=expired.values("key")[:batch_size], expires_at__lte=now
                    )
                else:
                    keys = list(expired.values_list("key", flat=True)[:batch_size])
                    if not keys:
                        return
                    batch = self._rows.filter(key__in=keys, expires_at__lte=now)
                deleted = self._delete(batch)
            if not deleted:
                return
            yield deleted

    def _purge_reporting(self, batch_size: int, report: builtins.list[Expired]) -> Iterator[int]:
        """The purge that tells which sessions it removed: each batch, in one transaction,
        locks its expired rows, reads them and deletes them by key.

        The rows are this purge's alone: PostgreSQL, MySQL and MariaDB lock them (a
        concurrent purge skips them where the database can, else waits and then finds them
        gone); on SQLite the transaction starts with a write, which takes the database's
        write lock before anything is read. A row touched meanwhile is not expired any more
        and is not read.
        """
        while True:
            with self._errors(admin=True):
                rows, deleted = self._purge_locked_batch(batch_size)
            if not rows:
                return
            for row in rows:
                record = self._record(row)
                report.append(
                    Expired(row.key, row.user_id, row.expires_at, row.last_seen, record=record)
                )
            yield deleted
            if len(rows) < batch_size:
                return

    def _purge_locked_batch(self, batch_size: int) -> tuple[builtins.list[Session], int]:
        """One batch of :meth:`_purge_reporting`: the rows it removed, and how many. A
        deadlock (MySQL and MariaDB may pick a purge as the victim when several run at once)
        rolls the whole batch back, and the batch is run again."""
        connection = connections[self.alias]
        attempt = 0
        while True:
            try:
                with transaction.atomic(using=self.alias):
                    if connection.vendor == "sqlite":
                        self._rows.filter(key="").update(version=F("version"))  # the write lock
                    expired = self._rows.filter(expires_at__lte=timezone.now())
                    if connection.features.has_select_for_update:
                        skip = connection.features.has_select_for_update_skip_locked
                        expired = expired.select_for_update(skip_locked=skip)
                    rows = list(expired.order_by("expires_at").only(*_LOAD_FIELDS)[:batch_size])
                    if not rows:
                        return [], 0
                    return rows, self._delete(self._rows.filter(key__in=[r.key for r in rows]))
            except OperationalError as exc:
                attempt += 1
                if not _deadlock(exc) or attempt > _DEADLOCK_RETRIES:
                    raise

    # --- helpers ----------------------------------------------------------

    def _statements(self) -> dict[str, str]:
        """The statements of the request path, written once per store.

        Building them through the ORM on every save cost several times what the database
        took to run them. Parameters are prepared by the model's own fields (see
        :meth:`_execute`), exactly as the ORM would prepare them.
        """
        if self._sql is None:
            quote = connections[self.alias].ops.quote_name
            table = quote(Session._meta.db_table)

            def col(name: str) -> str:
                return quote(str(_FIELDS[name].column))

            assignments = ", ".join(f"{col(name)} = %s" for name in _WRITE_FIELDS)
            self._sql = {
                "insert": f"INSERT INTO {table} ({', '.join(map(col, _INSERT_FIELDS))}) "
                f"VALUES ({', '.join(['%s'] * len(_INSERT_FIELDS))})",
                "update": f"UPDATE {table} SET {assignments} "
                f"WHERE {col('key')} = %s AND {col('version')} = %s",
                "touch": f"UPDATE {table} SET {col('expires_at')} = %s, {col('last_seen')} = %s "
                f"WHERE {col('key')} = %s AND {col('expires_at')} > %s",
                "delete": f"DELETE FROM {table} WHERE {col('key')} = %s",
            }
        return self._sql

    def _execute(self, statement: str, params: Iterable[tuple[str, Any]]) -> int:
        """Run one of :meth:`_statements`; the row count.

        ``params``: (field name, value) in the statement's parameter order; each value is
        prepared by its field, as the ORM would prepare it.
        """
        connection = connections[self.alias]
        prepared = [_FIELDS[name].get_db_prep_save(value, connection) for name, value in params]
        with self._errors(), connection.cursor() as cursor:
            sql = self._statements()[statement]
            self._timeouts.execute(connection, cursor, sql, prepared, write=True)
            return int(cursor.rowcount)

    def _delete(self, rows: QuerySet[Session]) -> int:
        """One DELETE statement and nothing else.

        ``QuerySet.delete()`` wraps even a single fast delete in a transaction, which
        costs a BEGIN and a COMMIT round trip; the session table has no relations or
        signals to honour, so the plain statement is equivalent.
        """
        return int(rows._raw_delete(self.alias))

    def _ip_condition(self, network: IPNetwork) -> Q:
        """``ip`` within ``network``, as conditions the ``ip`` index answers.

        PostgreSQL keeps ``ip`` as ``inet``: a network is one range. Elsewhere the
        column is text, where numeric ranges do not hold: an IPv4 network becomes text
        ranges over whole octets (``10.1.`` up to ``10.1/``), at most 256 of them; an
        IPv6 network only when its prefix is whole groups, none of them zero (below
        such a prefix the text of an address starts with those groups); any other IPv6
        network raises ``ValueError``.
        """
        first, last = network.network_address, network.broadcast_address
        if first == last:
            return Q(ip=str(first))
        if connections[self.alias].vendor == "postgresql":
            return Q(ip__gte=str(first), ip__lte=str(last))
        if isinstance(network, ipaddress.IPv4Network):
            return _text_prefixes(network)
        groups, rest = divmod(network.prefixlen, 16)
        fixed = first.exploded.split(":")[:groups]
        if rest or not fixed or any(int(group, 16) == 0 for group in fixed):
            raise ValueError(
                f"IPv6 network {network} cannot be searched on {connections[self.alias].vendor}:"
                " give whole non-zero groups (2001:db8::/32), an address, or use PostgreSQL"
            )
        prefix = ":".join(format(int(group, 16), "x") for group in fixed) + ":"
        # "g" follows every character of an address's text (hex digits, ":" and ".") byte by
        # byte and in MySQL's Unicode collations, where ";" sorts before ":".
        return Q(ip__gte=prefix, ip__lt=prefix + "g")

    def _live(self, user_id: str | None) -> QuerySet[Session]:
        rows: QuerySet[Session] = self._rows.filter(expires_at__gt=timezone.now())
        return rows if user_id is None else rows.filter(user_id=user_id)

    def _record(self, row: Session) -> SessionRecord | None:
        try:
            data = decode_data(row.data)
        except CorruptSession as exc:
            logger.warning("Session %s… in %s is unreadable (%s).", row.key[:12], self.alias, exc)
            return None
        return SessionRecord(
            data=data,
            expires_at=row.expires_at,
            created_at=row.created_at,
            last_seen=row.last_seen,
            user_id=row.user_id,
            ip=row.ip,
            user_agent=row.user_agent,
            version=row.version,
        )

    def _written(self, record: SessionRecord, version: int) -> dict[str, Any]:
        """The values of :data:`_WRITE_FIELDS` for ``record``."""
        return {
            "data": encode_data(record.data),
            "version": version,
            "expires_at": record.expires_at,
            "user_id": record.user_id,
            "ip": record.ip,
            "user_agent": record.user_agent,
            "last_seen": record.last_seen,
        }

    def _insert(self, key: str, record: SessionRecord) -> SessionRecord:
        values = [("key", key), *self._written(record, 1).items()]
        values.append(("created_at", record.created_at))
        # Inside a transaction a failed INSERT would poison it: guard with a savepoint.
        guard = (
            transaction.atomic(using=self.alias)
            if connections[self.alias].in_atomic_block
            else contextlib.nullcontext()
        )
        try:
            with guard:
                self._execute("insert", values)
        except IntegrityError as exc:
            raise CreateError(f"a session with key {key[:12]}… already exists") from exc
        return record.with_data(record.data, version=1)

    def _update(self, key: str, record: SessionRecord, changes: Changes | None) -> SessionRecord:
        if changes is None:
            updated = self._rows.filter(key=key).update(**self._written(record, record.version + 1))
            if not updated:
                raise UpdateError(f"session {key[:12]}… no longer exists")
            return record.with_data(record.data, record.version + 1)
        data, version = record.data, record.version
        values = [*self._written(record, version + 1).items(), ("key", key), ("version", version)]
        if self._execute("update", values):
            return record.with_data(data, version + 1)
        # Someone saved meanwhile (or the session is gone): merge onto the newer copy. The
        # no-op UPDATE comes first so that this transaction holds the row's write lock
        # (SQLite's database lock) before it reads: the merge is then the only writer and
        # lands at once, where read-then-write would deadlock or keep losing the race.
        with transaction.atomic(using=self.alias):
            if not self._rows.filter(key=key).update(version=F("version")):
                raise UpdateError(f"session {key[:12]}… no longer exists")
            data_text, version = self._rows.filter(key=key).values_list("data", "version").get()
            try:
                fresh = decode_data(data_text)
            except CorruptSession:
                fresh = {}
            data = changes.apply(fresh)
            merged = dataclasses.replace(record, data=data)
            self._rows.filter(key=key).update(**self._written(merged, version + 1))
        return record.with_data(data, version + 1)


#: MySQL and MariaDB raise OperationalError for some refused values too: an illegal mix of
#: collations (1267, 1271), a bad character for the column's character set (1300, 1366,
#: e.g. an emoji in a utf8mb3 table). Those are the data's fault, not an outage: no 503,
#: no count towards the circuit breaker.
_MYSQL_DATA_ERRORS = frozenset({1267, 1271, 1300, 1366})


#: Times a purge batch chosen as a deadlock's victim is run again.
_DEADLOCK_RETRIES = 5


def _deadlock(exc: Exception) -> bool:
    """MySQL's and MariaDB's deadlock (1213), PostgreSQL's (40P01)."""
    cause = exc.__cause__ or exc
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return code == "40P01" or (bool(exc.args) and exc.args[0] == 1213)


def _refused_data(exc: Exception) -> bool:
    return bool(exc.args) and exc.args[0] in _MYSQL_DATA_ERRORS


def _text_prefixes(network: ipaddress.IPv4Network) -> Q:
    """Text conditions matching the dotted IPv4 addresses in ``network`` (not a host)."""
    octets = str(network.network_address).split(".")
    whole, rest = divmod(network.prefixlen, 8)
    if not rest:  # whole octets: one range, "10.1." up to "10.1/" ("/" follows ".")
        text = ".".join(octets[:whole]) + "."
        return Q(ip__contains=".") if whole == 0 else Q(ip__gte=text, ip__lt=text[:-1] + "/")
    condition = Q()
    start = int(octets[whole])
    for value in range(start, start + (1 << (8 - rest))):
        text = ".".join([*octets[:whole], str(value)])
        condition |= Q(ip=text) if whole == 3 else Q(ip__gte=text + ".", ip__lt=text + "/")
    return condition
