"""Lock and statement timeouts for the database store's request-path statements.

A session statement that waits on a lock (``LOCK TABLE``, a long migration, a stuck
transaction) must not hold the worker for as long as the lock lasts. Each statement of
``load``, ``save``, ``touch`` and ``delete`` runs with its own limits, in the same round
trip, without changing anything for the project's other queries:

* PostgreSQL: ``SET LOCAL lock_timeout …; SET LOCAL statement_timeout …; <statement>`` in
  one query string (one implicit transaction, so the settings end with it). Needs
  client-side binding (Django's default with psycopg 3, and psycopg 2).
* MariaDB: ``SET STATEMENT innodb_lock_wait_timeout=…, lock_wait_timeout=…,
  max_statement_time=… FOR <statement>`` (lock waits in whole seconds, at least 1).
* SQLite: only when ``LOCK_TIMEOUT`` is set in ``OPTIONS``, the connection's busy timeout,
  lowered around the statement and put back. By default SQLite keeps the connection's own
  (Django's ``OPTIONS["timeout"]``, 5 s): its writers queue for one lock, and a busy
  development server would otherwise answer 503s.
* Elsewhere (MySQL, other backends), and inside a transaction the project opened (where
  ``SET LOCAL`` would outlast the statement), statements run without these limits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: The statement limit of the admin's and the commands' queries (listing, counting, ending
#: many sessions), which may take longer than a request's; their lock limit is the same.
ADMIN_STATEMENT_TIMEOUT = 30.0

OPTIONS: dict[str, tuple[type, ...]] = {
    "LOCK_TIMEOUT": (int, float),
    "STATEMENT_TIMEOUT": (int, float),
    "SYNCHRONOUS_COMMIT": (bool,),
}
DEFAULTS = {"LOCK_TIMEOUT": 0.5, "STATEMENT_TIMEOUT": 1.0}


def problems(options: Mapping[str, Any]) -> list[str]:
    found = []
    commit = options.get("SYNCHRONOUS_COMMIT", True)
    if not isinstance(commit, bool):
        found.append(
            f"OPTIONS['SYNCHRONOUS_COMMIT'] is {commit!r}; it must be True (the default) or "
            "False (PostgreSQL: session writes do not wait for the WAL flush)."
        )
    for name in DEFAULTS:
        value = options.get(name, DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            found.append(
                f"OPTIONS[{name!r}] is {value!r}; it must be a number of seconds >= 0 "
                "(0: no limit)."
            )
    return found


class Timeouts:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.lock = float(options.get("LOCK_TIMEOUT", DEFAULTS["LOCK_TIMEOUT"]))
        self.sqlite_lock = float(options.get("LOCK_TIMEOUT", 0))
        self.statement = float(options.get("STATEMENT_TIMEOUT", DEFAULTS["STATEMENT_TIMEOUT"]))
        # PostgreSQL only: a session write does not wait for its WAL flush (see stores-database)
        self.asynchronous_commit = options.get("SYNCHRONOUS_COMMIT", True) is False

    def execute(
        self, connection: Any, cursor: Any, sql: str, params: Sequence[Any], *, write: bool = False
    ) -> None:
        """Run ``sql`` under the limits; the cursor is left on its result. ``write``: a
        session write, which SYNCHRONOUS_COMMIT = False lets commit without the WAL flush."""
        asynchronous = write and self.asynchronous_commit
        if not (self.lock or self.statement or asynchronous) or connection.in_atomic_block:
            cursor.execute(sql, params)
        elif connection.vendor == "postgresql" and _client_side_binding(cursor):
            self._postgresql(cursor, sql, params, asynchronous=asynchronous)
        elif connection.vendor == "mysql" and getattr(connection, "mysql_is_mariadb", False):
            self._mariadb(cursor, sql, params)
        elif connection.vendor == "sqlite" and self.sqlite_lock:
            self._sqlite(connection, cursor, sql, params)
        else:
            cursor.execute(sql, params)

    def _postgresql(
        self, cursor: Any, sql: str, params: Sequence[Any], *, asynchronous: bool = False
    ) -> None:
        settings = self._postgresql_settings(self.statement)
        if asynchronous:
            settings.append("SET LOCAL synchronous_commit TO OFF")
        cursor.execute("; ".join([*settings, sql]), params)
        if _psycopg3(cursor):  # psycopg 3 stands on the first result, psycopg 2 on the last
            for _setting in settings:
                cursor.nextset()

    def _postgresql_settings(self, statement: float) -> list[str]:
        settings = []
        if self.lock:
            settings.append(f"SET LOCAL lock_timeout = '{math.ceil(self.lock * 1000)}ms'")
        if statement:
            settings.append(f"SET LOCAL statement_timeout = '{math.ceil(statement * 1000)}ms'")
        return settings

    def _mariadb(self, cursor: Any, sql: str, params: Sequence[Any]) -> None:
        cursor.execute(self._mariadb_sql(sql, self.statement), params)

    def _mariadb_sql(self, sql: str, statement: float) -> str:
        limits = []
        if self.lock:
            seconds = max(1, math.ceil(self.lock))
            limits += [f"innodb_lock_wait_timeout={seconds}", f"lock_wait_timeout={seconds}"]
        if statement:
            limits.append(f"max_statement_time={statement:g}")
        return f"SET STATEMENT {', '.join(limits)} FOR {sql}" if limits else sql

    @contextlib.contextmanager
    def admin_queries(self, connection: Any) -> Iterator[None]:
        """The ORM queries run inside get the lock limit and ADMIN_STATEMENT_TIMEOUT (the
        admin's and commands' side: listing, counting, ending many sessions), so that a
        locked table does not hold a web worker showing the admin or the user page."""
        if not self.lock or connection.vendor not in ("postgresql", "mysql"):
            yield
            return

        def limited(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            cursor = context["cursor"]
            if many or connection.in_atomic_block:
                return execute(sql, params, many, context)
            if connection.vendor == "postgresql" and _client_side_binding(cursor):
                settings = self._postgresql_settings(ADMIN_STATEMENT_TIMEOUT)
                result = execute("; ".join([*settings, sql]), params, many, context)
                if _psycopg3(cursor):
                    for _setting in settings:
                        cursor.nextset()
                return result
            if connection.vendor == "mysql" and "mysql_server_data" not in connection.__dict__:
                # Django asking a fresh connection what server it is (its first query):
                # asking mysql_is_mariadb here would ask again, without end.
                return execute(sql, params, many, context)
            if connection.vendor == "mysql" and getattr(connection, "mysql_is_mariadb", False):
                return execute(
                    self._mariadb_sql(sql, ADMIN_STATEMENT_TIMEOUT), params, many, context
                )
            return execute(sql, params, many, context)

        with connection.execute_wrapper(limited):
            yield

    def _sqlite(self, connection: Any, cursor: Any, sql: str, params: Sequence[Any]) -> None:
        raw = connection.connection  # its own cursor, so ``cursor`` keeps the statement's result
        (previous,) = raw.execute("PRAGMA busy_timeout").fetchone()
        raw.execute(f"PRAGMA busy_timeout = {math.ceil(self.sqlite_lock * 1000)}")
        try:
            cursor.execute(sql, params)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(previous)}")


def _inner(cursor: Any) -> Any:
    return getattr(cursor, "cursor", cursor)  # Django's CursorWrapper holds the driver's


def _psycopg3(cursor: Any) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(_inner(cursor), psycopg.Cursor)


def _client_side_binding(cursor: Any) -> bool:
    if not _psycopg3(cursor):
        return True  # psycopg 2 binds on the client
    import psycopg

    return isinstance(_inner(cursor), psycopg.ClientCursor)
