"""Where a request's time goes, in-process: the ``cost`` part of ``bash bench/run``.

The WSGI handler is called directly (no HTTP server, no wrk), once per request, cycling
through primed visitors as the throughput cases do. For each engine and case it reports
microseconds per request of wall time, of this process's CPU (Django, the engine, the
client library) and of the store server's CPU (redis-server from ``INFO cpu``; the
PostgreSQL backend of this connection from ``/proc``). On a machine where the load
generator, the web worker and the store share the cores, the sum of the two CPU columns
is what a request costs in throughput; the wall column adds waiting on loopback.

``python -m bench.cost`` with ``BENCH_ENGINE`` set prints ``RESULT {json}`` last.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection  # noqa: E402

ENGINE = settings.ENGINE
REQUESTS = int(os.environ.get("BENCH_COST_REQUESTS", "2000"))
REPS = int(os.environ.get("BENCH_COST_REPS", "3"))
VISITORS = int(os.environ.get("BENCH_VISITORS", "1000"))
CASES = ("untouched", "read", "write")
_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")

handler = WSGIHandler()


def call(path: str, cookie: str = "") -> bytes:
    path_info, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    status: list[str] = []
    body = b"".join(handler(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return body


def server_cpu_us() -> Callable[[], float]:
    """A reader of the store server's CPU time so far, in microseconds (0: no server)."""
    if ENGINE in ("sk_redis", "cache_redis", "floor_redis"):
        admin = redis.Redis.from_url(settings.REDIS_URL)

        def redis_cpu() -> float:
            info = admin.info("cpu")
            return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1e6

        return redis_cpu
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            stat = Path(f"/proc/{cursor.fetchone()[0]}/stat")

        def backend_cpu() -> float:
            fields = stat.read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) * _TICK_US  # utime + stime

        return backend_cpu
    return lambda: 0.0


def measure(case: str, cookies: list[str], server: Callable[[], float]) -> dict[str, float]:
    path = f"/{case}/"
    n = len(cookies)
    wall, cpu, srv = time.perf_counter(), time.process_time(), server()
    for cookie in cookies:
        call(path, cookie)
    return {
        "wall_us": (time.perf_counter() - wall) * 1e6 / n,
        "cpu_us": (time.process_time() - cpu) * 1e6 / n,
        "server_us": (server() - srv) / n,
    }


def main() -> None:
    has_session = ENGINE not in ("none", "floor_redis")
    primed = call(f"/prime/?n={VISITORS}").decode().split() if has_session else [""]
    cookies = [primed[i % len(primed)] for i in range(REQUESTS)]
    server = server_cpu_us()
    out: dict[str, Any] = {}
    for case in CASES if ENGINE != "none" else ("untouched",):
        for cookie in cookies[:200]:  # warm up: imports, connections, scripts, caches
            call(f"/{case}/", cookie)
        runs = [measure(case, cookies, server) for _ in range(REPS)]
        out[case] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print("RESULT " + json.dumps({"engine": ENGINE, "cost": out}), flush=True)


if __name__ == "__main__":
    main()
