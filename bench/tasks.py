"""In-process parts of the benchmark, one engine per process (``BENCH_ENGINE``).

``python -m bench.tasks setup|roundtrips|admin|purge`` prints ``RESULT {json}`` last.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

ENGINE = settings.ENGINE
RESULT: dict[str, Any] = {"engine": ENGINE}


def emit() -> None:
    print("RESULT " + json.dumps(RESULT), flush=True)


# --- counting round trips -------------------------------------------------------------


class SqlCounter:
    """Round trips to the database: statements, plus transaction control.

    psycopg sends BEGIN and COMMIT itself (not through Django's cursor), so on PostgreSQL
    each commit adds 2; Django's SQLite backend runs BEGIN as a statement, so there it adds
    1 (the COMMIT).
    """

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self.durations: list[tuple[float, str]] = []

    def wrapper(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any):
        self.statements += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            self.durations.append((time.perf_counter() - started, sql))

    @property
    def round_trips(self) -> int:
        return self.statements + self.commits

    @contextlib.contextmanager
    def watch(self) -> Iterator[SqlCounter]:
        with contextlib.ExitStack() as stack:
            for conn in connections.all():
                stack.enter_context(conn.execute_wrapper(self.wrapper))
                original = conn.commit
                extra = 1 if conn.vendor == "sqlite" else 2

                def commit(original: Callable[[], None] = original, extra: int = extra) -> None:
                    self.commits += extra
                    original()

                conn.commit = commit  # type: ignore[method-assign]
                stack.callback(delattr, conn, "commit")
            yield self


class RedisCounter:
    """Client round trips (one per command or pipeline sent) and server-side commands."""

    def __init__(self) -> None:
        self.sends = 0
        self.admin = redis.Redis.from_url(settings.REDIS_URL)

    def server_calls(self) -> Counter[str]:
        stats = self.admin.info("commandstats")
        return Counter(
            {
                name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in stats.items()
                if name != "cmdstat_info"
            }
        )

    @contextlib.contextmanager
    def watch(self) -> Iterator[RedisCounter]:
        connection_class = redis.connection.AbstractConnection
        original = connection_class.send_packed_command

        def send(conn: Any, command: Any, check_health: bool = True) -> None:
            if conn is not self.admin_connection:
                self.sends += 1
            original(conn, command, check_health)

        self.admin_connection = self.admin.connection_pool.get_connection()
        self.admin.connection_pool.release(self.admin_connection)
        connection_class.send_packed_command = send  # type: ignore[method-assign]
        try:
            yield self
        finally:
            connection_class.send_packed_command = original  # type: ignore[method-assign]


def pool(client: Client, n: int) -> list[str]:
    response = client.get(f"/prime/?n={n}")
    assert response.status_code == 200, response.status_code
    return response.content.decode().split()


def roundtrips() -> None:
    """Store round trips per request for each case, over N requests each."""
    n = int(os.environ.get("BENCH_RT_REQUESTS", "10"))
    client = Client()
    has_session = bool(settings.MIDDLEWARE)
    cases = ["untouched", "first", "read", "write", "login"]
    if ENGINE.startswith("sk_"):
        cases.append("incr")
    out: dict[str, Any] = {}
    for case in cases:
        cookies = pool(client, n + 1) if has_session else [""] * (n + 1)
        if case == "first":
            cookies = [""] * (n + 1)
        elif case != "login":
            cookies = [cookies[0]] * (n + 1)

        def get(cookie: str, case: str = case) -> None:
            client.cookies.clear()
            extra = {"HTTP_COOKIE": cookie} if cookie else {}
            response = client.get(f"/{case}/", **extra)
            assert response.status_code == 200, (case, response.status_code)

        get(cookies[0])  # warm: connections, scripts loaded
        sql, rds = SqlCounter(), RedisCounter()
        before = rds.server_calls()
        with sql.watch(), rds.watch():
            for cookie in cookies[1:]:
                get(cookie)
        server = rds.server_calls() - before
        out[case] = {
            "sql": sql.round_trips / n,
            "sql_statements": sql.statements / n,
            "redis": rds.sends / n,
            "redis_server_commands": sum(server.values()) / n,
            "redis_commands": {k: v / n for k, v in sorted(server.items())},
        }
    RESULT["roundtrips"] = out


# --- setup ---------------------------------------------------------------------------


def setup() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    if not user_model.objects.filter(username="bench").exists():
        user_model.objects.create_superuser("bench", "bench@example.com", "bench")
    RESULT["setup"] = "ok"


# --- admin list and listsessions at growing sizes ------------------------------------


class Enough(Exception):
    pass


class Sink:
    """A stdout that stops the command after ``lines`` lines."""

    def __init__(self, lines: int) -> None:
        self.left = lines

    def write(self, text: str) -> int:
        self.left -= text.count("\n")
        if self.left <= 0:
            raise Enough
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


#: The address of a few sessions among the filled ones: the oldest three of each fill.
RARE_IP = "192.0.2.77"
#: The admin views timed at each size: the list, then filtered and searched.
ADMIN_VIEWS = {
    "list": "",
    "signed_in": "?who=signed-in",
    "rare_ip": f"?q={RARE_IP}",
    "network": "?q=10.0.1.",  # 10.0.1.0/24: 256 addresses, one session each
}


def fill_pg(start: int, stop: int, expired: bool = False, table: str = "sessionkit") -> None:
    """Rows ``start`` to ``stop``: one in 50 signed in, each from an address of its own
    (10.0.0.0/8, row number as the address), but the last three, from :data:`RARE_IP`."""
    with connections["default"].cursor() as cursor:
        if table == "sessionkit":
            expires = (
                "now() - interval '1 day' - g * interval '1 ms'"
                if expired
                else "now() + interval '7 days' + g * interval '1 ms'"
            )
            cursor.execute(
                "INSERT INTO django_sessionkit_session (key, data, version, expires_at, user_id,"
                " ip, user_agent, created_at, last_seen) SELECT"
                " encode(sha256(('bench' || g)::text::bytea), 'hex'), '{\"views\":1}', 1,"
                f" {expires}, CASE WHEN g %% 50 = 0 THEN %s ELSE NULL END,"
                " CASE WHEN g >= %s THEN %s::inet ELSE '10.0.0.0'::inet + g END,"
                " 'Mozilla/5.0 (X11; Linux x86_64) bench', now() - interval '1 hour',"
                " now() - g * interval '1 ms' FROM generate_series(%s, %s) AS g",
                [
                    str(get_user_model().objects.get(username="bench").pk),
                    stop - 3,
                    RARE_IP,
                    start,
                    stop - 1,
                ],
            )
        else:
            expires = (
                "now() - interval '1 day' - g * interval '1 ms'"
                if expired
                else "now() + interval '7 days' + g * interval '1 ms'"
            )
            cursor.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) SELECT"
                " substr(md5('bench' || g) || md5('x' || g), 1, 40), 'e30:bench', "
                f"{expires} FROM generate_series(%s, %s) AS g",
                [start, stop - 1],
            )
        cursor.execute("ANALYZE")


def fill_redis(start: int, stop: int) -> None:
    """As :func:`fill_pg`, in RedisStore's key layout: the hash and every index."""
    import ipaddress

    from django_sessionkit.stores import get_store
    from django_sessionkit.stores.redis import ip_code

    store: Any = get_store()
    client = redis.Redis.from_url(settings.SESSIONKIT["STORE"]["LOCATION"])  # type: ignore[index]
    user_id = str(get_user_model().objects.get(username="bench").pk)
    base = store.index_base
    now_us = int(time.time() * 1_000_000)
    batch = 2000
    for first in range(start, stop, batch):
        pipe = client.pipeline(transaction=False)
        for g in range(first, min(first + batch, stop)):
            key = f"{g:064x}"
            expires = now_us + 7 * 86400 * 1_000_000 + g
            seen = now_us - g * 1000
            name = store.session_key(key)
            ip = RARE_IP if g >= stop - 3 else str(ipaddress.ip_address("10.0.0.0") + g)
            fields = {
                "v": 1,
                "e": expires,
                "c": now_us - 3600 * 1_000_000,
                "l": seen,
                "ip": ip,
                "ua": "Mozilla/5.0 (X11; Linux x86_64) bench",
                "d:views": "1",
            }
            who = "i" if g % 50 == 0 else "a"
            if who == "i":
                fields["u"] = user_id
                pipe.sadd(store.user_key(user_id), key)
            code = ip_code(ip)
            pipe.hset(name, mapping=fields)
            pipe.pexpireat(name, expires // 1000)
            pipe.zadd(store.exp_index, {key: expires})
            pipe.zadd(store.seen_index, {key: -seen})
            pipe.zadd(f"{base}seen:{who}", {key: -seen})
            pipe.zadd(f"{base}ip:{code}:{who}", {key: -seen})
            pipe.zadd(f"{base}ips", {code: 0})
            pipe.hset(f"{base}where", key, who + code)
        pipe.execute()


def admin() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_ADMIN_SIZES", "10000,100000").split(",")]
    views = int(os.environ.get("BENCH_ADMIN_VIEWS", "7"))
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    url = "/admin/django_sessionkit/session/"
    filled = 0
    out = []
    for size in sizes:
        started = time.perf_counter()
        if ENGINE == "sk_pg":
            fill_pg(filled, size)
        else:
            fill_redis(filled, size)
        fill_seconds = time.perf_counter() - started
        filled = size
        row: dict[str, Any] = {"sessions": size, "fill_s": fill_seconds}
        for name, query in ADMIN_VIEWS.items():
            client.get(url + query)  # warm
            times = []
            sql, rds = SqlCounter(), RedisCounter()
            with sql.watch(), rds.watch():
                for _ in range(views):
                    t = time.perf_counter()
                    response = client.get(url + query)
                    times.append(time.perf_counter() - t)
                    assert response.status_code == 200, response.status_code
            rows = response.content.decode().count('class="sessionkit-row')
            prefix = "admin" if name == "list" else f"admin_{name}"
            row[f"{prefix}_ms"] = statistics.median(times) * 1000
            row[f"{prefix}_sql"] = sql.round_trips / views
            row[f"{prefix}_redis"] = rds.sends / views
            row[f"{prefix}_rows"] = rows
        list_times = []
        for _ in range(3):
            t = time.perf_counter()
            with contextlib.suppress(Enough):
                call_command("listsessions", "--page-size", "500", stdout=Sink(1001))
            list_times.append(time.perf_counter() - t)
        row["listsessions_1000_rows_ms"] = statistics.median(list_times) * 1000
        out.append(row)
        print(f"  admin {ENGINE} {size:,}: {out[-1]}", file=sys.stderr, flush=True)
    RESULT["admin"] = out


# --- purge (issue 6) -----------------------------------------------------------------


def purge() -> None:
    from django.contrib.sessions.management.commands import clearsessions as django_clear
    from django.contrib.sessions.models import Session as DjangoSession

    from django_sessionkit.models import Session

    expired = int(os.environ.get("BENCH_PURGE_EXPIRED", "100000"))
    live = int(os.environ.get("BENCH_PURGE_LIVE", "10000"))
    with connections["default"].cursor() as cursor:
        cursor.execute("TRUNCATE django_sessionkit_session, django_session")
    for table in ("sessionkit", "django"):
        fill_pg(0, expired, expired=True, table=table)
        fill_pg(expired, expired + live, table=table)
    with connections["default"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_sessionkit_session")
        cursor.execute("VACUUM ANALYZE django_session")
    live_keys = set(
        Session.objects.filter(expires_at__gt=timezone.now()).values_list("key", flat=True)
    )
    django_live = set(
        DjangoSession.objects.filter(expire_date__gt=timezone.now()).values_list(
            "session_key", flat=True
        )
    )
    out: dict[str, Any] = {"expired": expired, "live": live}
    runs: list[tuple[str, Callable[[], None]]] = [
        ("sessionkit purgesessions", lambda: call_command("purgesessions", stdout=Sink(10**9))),
        ("django clearsessions", lambda: call_command(django_clear.Command())),
    ]
    for name, run in runs:
        sql = SqlCounter()
        started = time.perf_counter()
        with sql.watch():
            run()
        seconds = time.perf_counter() - started
        longest = max(sql.durations, default=(0.0, ""))
        deletes = [d for d, s in sql.durations if s.lstrip().upper().startswith("DELETE")]
        out[name] = {
            "seconds": seconds,
            "rows_per_s": expired / seconds if seconds else 0.0,
            "statements": sql.statements,
            "deletes": len(deletes),
            "longest_statement_ms": longest[0] * 1000,
            "longest_statement": longest[1][:80],
            "longest_delete_ms": max(deletes, default=0.0) * 1000,
        }
    now = timezone.now()
    survivors = set(Session.objects.filter(key__in=live_keys).values_list("key", flat=True))
    django_survivors = set(
        DjangoSession.objects.filter(session_key__in=django_live).values_list(
            "session_key", flat=True
        )
    )
    out["sessionkit live survived"] = f"{len(survivors):,} of {len(live_keys):,}"
    out["sessionkit expired left"] = Session.objects.filter(expires_at__lte=now).count()
    out["django live survived"] = f"{len(django_survivors):,} of {len(django_live):,}"
    out["django expired left"] = DjangoSession.objects.filter(expire_date__lte=now).count()
    RESULT["purge"] = out


if __name__ == "__main__":
    {"setup": setup, "roundtrips": roundtrips, "admin": admin, "purge": purge}[sys.argv[1]]()
    emit()
