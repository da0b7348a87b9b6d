"""Where a request's time goes, in-process: the ``cost`` part of ``bash bench/run``.

The WSGI handler is called directly (no HTTP server, no wrk), once per request, cycling
through primed visitors as the throughput cases do. For each engine and case it reports
microseconds per request of wall time, of this process's CPU (Django, the engine, the
client library) and of the store server's CPU (redis-server from ``INFO cpu``; the
PostgreSQL backend of this connection from ``/proc``). On a machine where the load
generator, the web worker and the store share the cores, the sum of the two CPU columns
is what a request costs in throughput; the wall column adds waiting on loopback.

``BENCH_COST_INSTRUCTIONS=1`` adds instructions per request: the same requests are run
again in a child under ``valgrind --tool=callgrind`` (the Django process only; the store
server is not counted), which counts the instructions of exactly the measured requests
(``--dump-before=getsid``: the driver calls ``os.getsid(0)`` before and after each case's
requests, and callgrind writes the counts since the last mark at each). Unlike the µs, the
counts repeat to a few parts in ten thousand, so they settle figures that are close.
``BENCH_COST_INSTR_REQUESTS`` (500) requests per case there, after the same warm-up.

``python -m bench.cost`` with ``BENCH_ENGINE`` set prints ``RESULT {json}`` last.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
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
CASES = tuple(os.environ.get("BENCH_COST_CASES", "untouched read write").split())
#: Set in the child that valgrind runs: mark each case's requests with os.getsid(0).
UNDER_CALLGRIND = os.environ.get("BENCH_COST_CALLGRIND_OUT", "")
INSTR_REQUESTS = int(os.environ.get("BENCH_COST_INSTR_REQUESTS", "500"))
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


def counted(case: str, cookies: list[str]) -> None:
    """Under callgrind: the case's requests between two marks (each mark ends a dump)."""
    path = f"/{case}/"
    os.getsid(0)
    for cookie in cookies:
        call(path, cookie)
    os.getsid(0)


def instructions(cases: tuple[str, ...]) -> dict[str, float]:
    """Instructions per request of each case, counted by callgrind in a child process."""
    out = Path(os.environ.get("BENCH_WORK") or "/tmp") / f"callgrind-{ENGINE}-{os.getpid()}"
    args = ["valgrind", "--tool=callgrind", "--dump-before=getsid", "--dump-instr=no"]
    args += [f"--callgrind-out-file={out}", sys.executable, "-m", "bench.cost"]
    env = dict(os.environ, BENCH_COST_CALLGRIND_OUT=str(out), PYTHONHASHSEED="0")
    env.pop("BENCH_COST_INSTRUCTIONS", None)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind run of {ENGINE} failed:\n{proc.stderr[-3000:]}")
    # Dump k ends at the k-th mark: the even ones hold exactly one case's requests each.
    parts = sorted(out.parent.glob(out.name + ".*"), key=lambda p: int(p.suffix[1:]))
    totals = []
    for part in parts:
        text = part.read_text()
        totals.append(int(text.split("\ntotals:", 1)[1].split()[0]))
        part.unlink()
    Path(out).unlink(missing_ok=True)
    if len(totals) != 2 * len(cases):
        raise RuntimeError(f"callgrind wrote {len(totals)} dumps for {len(cases)} cases")
    return {case: totals[2 * i + 1] / INSTR_REQUESTS for i, case in enumerate(cases)}


def main() -> None:
    has_session = ENGINE not in ("none", "floor_redis")
    visitors = min(VISITORS, INSTR_REQUESTS) if UNDER_CALLGRIND else VISITORS
    primed = call(f"/prime/?n={visitors}").decode().split() if has_session else [""]
    count = INSTR_REQUESTS if UNDER_CALLGRIND else REQUESTS
    cookies = [primed[i % len(primed)] for i in range(count)]
    cases = CASES if ENGINE != "none" else ("untouched",)
    server = server_cpu_us()
    out: dict[str, Any] = {}
    for case in cases:
        for cookie in cookies[:200]:  # warm up: imports, connections, scripts, caches
            call(f"/{case}/", cookie)
        if UNDER_CALLGRIND:
            counted(case, cookies)
            continue
        runs = [measure(case, cookies, server) for _ in range(REPS)]
        out[case] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    if os.environ.get("BENCH_COST_INSTRUCTIONS") == "1" and not UNDER_CALLGRIND:
        for case, count_ in instructions(cases).items():
            out[case]["instructions"] = count_
    print("RESULT " + json.dumps({"engine": ENGINE, "cost": out}), flush=True)


if __name__ == "__main__":
    main()
