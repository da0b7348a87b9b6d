"""The benchmark driver behind ``bash bench/run``: servers, wrk, the in-process tasks, tables.

Environment (bench/run sets the service ones): BENCH_MODE (quick|full), BENCH_PARTS,
BENCH_SERVERS, BENCH_ENGINES, BENCH_CASES, BENCH_DURATION, BENCH_REPS, BENCH_CONNECTIONS,
BENCH_BURST, BENCH_SQLITE, BENCH_PG_DB, BENCH_REDIS_URL.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
FULL = os.environ.get("BENCH_MODE", "quick") == "full"


def env_list(name: str, default: str) -> list[str]:
    return os.environ.get(name, default).replace(",", " ").split()


PARTS = env_list("BENCH_PARTS", "roundtrips cost http burst admin purge")
SERVERS = env_list("BENCH_SERVERS", "gunicorn uvicorn express")
#: Express's engines: its own ceiling (no express-session) and express-session + connect-redis.
EXPRESS_ENGINES = ["none", "express_redis"]
EXPRESS_APP = ROOT / "tests" / "express_app"
ENGINES = env_list(
    "BENCH_ENGINES",
    "none sk_sqlite db_sqlite sk_pg db_pg sk_redis cache_redis signed_cookies floor_redis",
)
CASES = env_list("BENCH_CASES", "untouched first read write login")
DURATION = int(os.environ.get("BENCH_DURATION", "10" if FULL else "2"))  # wrk: whole seconds
REPS = int(os.environ.get("BENCH_REPS", "5" if FULL else "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
BURST = int(os.environ.get("BENCH_BURST", "5000" if FULL else "2000"))
BURST_THREADS = 16
#: Sessions the untouched/read/write cases take turns with (one cookie per request, in a
#: cycle), so that concurrent requests are different visitors, as on a real site; 1 sends
#: every request with one cookie (the lost-update burst measures that case on its own).
VISITORS = int(os.environ.get("BENCH_VISITORS", "1000"))
BUDGET = {"untouched": "0", "first": "1", "read": "1", "write": "2", "login": "<=3", "incr": "2"}
SAME_DB = {
    "sk_sqlite": "db_sqlite",
    "db_sqlite": "db_sqlite",
    "sk_pg": "db_pg",
    "db_pg": "db_pg",
    "sk_redis": "db_pg",
    "cache_redis": "db_pg",
    "signed_cookies": "db_pg",
    "floor_redis": "db_pg",
}
WORK = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="sessionkit-bench-"))


def child_env(engine: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BENCH_ENGINE=engine,
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def task(name: str, engine: str, module: str = "bench.tasks", **extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(VENV / "python"), "-m", module, name],
        cwd=ROOT,
        env=child_env(engine, **extra),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.tasks {name} ({engine}) failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


# --- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int, path: str, cookie: str = "", timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    def __init__(self, kind: str, engine: str, workers: int = 1) -> None:
        self.kind, self.engine, self.port = kind, engine, free_port()
        bind = f"127.0.0.1:{self.port}"
        env = child_env(engine, BENCH_SERVER=kind)
        if kind == "express":  # node, one process: the test suite's express-session app
            args = ["node", str(EXPRESS_APP / "app.js")]
            env.update(
                PORT=str(self.port),
                REDIS_URL=f"{os.environ['BENCH_REDIS_URL']}/2",
                BENCH_ROUTES="true",
                NO_SESSION="true" if engine == "none" else "false",
                COOKIE_MAX_AGE_MS=str(14 * 24 * 3600 * 1000),  # Django's default two weeks
            )
        elif kind == "gunicorn":
            args = [str(VENV / "gunicorn"), "-w", str(workers), "-b", bind]
            args += ["--log-level", "warning", "bench.wsgi:application"]
        else:
            args = [str(VENV / "uvicorn"), "--host", "127.0.0.1", "--port", str(self.port)]
            args += ["--log-level", "warning", "--no-access-log", "bench.asgi:application"]
        self.log = open(WORK / f"{kind}-{engine}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(self.port, "/untouched/", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{kind} ({engine}) did not start; see {self.log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prime(server: Server, n: int) -> list[str]:
    for _attempt in range(3):
        status, body = get(server.port, f"/prime/?n={n}", timeout=300)
        if status == 200:
            return body.decode().split()
        # SQLite under uvicorn: writes of the case before, still queued on the file's lock
        # after wrk stopped, can hold it past the prime's 30 s busy timeout. Let them drain.
        time.sleep(5)
    raise RuntimeError(f"priming {n} sessions on {server.engine} failed: {status} {body[:200]!r}")


def wrk(port: int, path: str, cookie: str = "", pool: str = "", seconds: int = DURATION):
    env = dict(os.environ, BENCH_COOKIE=cookie, BENCH_POOL=pool)
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s"]
    args += ["-s", str(ROOT / "bench" / "wrk" / "case.lua"), f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(line[-1][len("BENCH ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


_stats_client: list[Any] = []


def redis_connections() -> int:
    """Connections the benchmark's redis-server has accepted so far (ours: one, kept)."""
    if not _stats_client:
        import redis

        _stats_client.append(redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    return int(_stats_client[0].info("stats")["total_connections_received"])


# --- throughput -------------------------------------------------------------------------


def http_part() -> dict[str, Any]:
    results: dict[str, Any] = {}  # server -> engine -> case -> list of runs
    fixed_pool = os.environ.get("BENCH_LOGIN_POOL")
    for rep in range(REPS):
        for server_kind in SERVERS:
            engines = EXPRESS_ENGINES if server_kind == "express" else ENGINES
            # Round-robin, rotated each repetition: noise spreads over every engine alike.
            order = engines[rep % len(engines) :] + engines[: rep % len(engines)]
            for engine in order:
                cases = ["untouched"] if engine == "none" else CASES
                with Server(server_kind, engine) as server:
                    cookie = "" if engine == "none" else prime(server, 1)[0]
                    visitors = ""
                    if engine != "none" and VISITORS > 1:
                        visitors = str(WORK / f"visitors-{engine}.txt")
                        Path(visitors).write_text("\n".join(prime(server, VISITORS)) + "\n")
                    for _ in range(50):  # warm up: imports, connections, scripts
                        get(server.port, "/read/", cookie)
                    for case in cases:
                        pool = "" if case in ("first", "login") else visitors
                        if case == "login" and engine != "none":
                            pool = str(WORK / f"pool-{engine}.txt")
                            # One fresh session per login: enough for 1.5x this engine's best
                            # rate on a session-using case so far (a login costs more).
                            seen = results.get(server_kind, {}).get(engine, {})
                            rates = [
                                r["rps"]
                                for c in ("first", "read", "write")
                                for r in seen.get(c, [])
                            ]
                            fastest = max(rates, default=2000.0)
                            size = int(fixed_pool or 1.5 * fastest * DURATION + 500)
                            Path(pool).write_text("\n".join(prime(server, size)) + "\n")
                        before = redis_connections()
                        run = wrk(server.port, f"/{case}/", "" if case == "first" else cookie, pool)
                        run["redis_conns_per_req"] = (redis_connections() - before) / max(
                            run["requests"], 1
                        )
                        runs = results.setdefault(server_kind, {}).setdefault(engine, {})
                        runs.setdefault(case, []).append(run)
                print(
                    f"  rep {rep + 1}/{REPS} {server_kind} {engine}: "
                    + ", ".join(
                        f"{c} {results[server_kind][engine][c][-1]['rps']:.0f}/s" for c in cases
                    ),
                    flush=True,
                )
    return results


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def print_http(results: dict[str, Any]) -> None:
    for server_kind, engines in results.items():
        ceiling = median_of(engines["none"]["untouched"], "rps") if "none" in engines else None
        print(
            f"\n### {server_kind}: median req/s and p99 over {REPS} runs "
            f"(wrk -t1 -c{CONNECTIONS} -d{DURATION:g}s)"
        )
        if ceiling:
            p99 = median_of(engines["none"]["untouched"], "p99_us") / 1000
            print(f"ceiling (no session middleware): {ceiling:,.0f} req/s, p99 {p99:.1f} ms\n")
        head = f"{'engine':<15} {'case':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
        head += f" {'÷ceiling':>8}"
        print(head + f" {'÷db(same DB)':>13} {'redis conn/req':>14} {'non-2xx':>7}")
        for engine, cases in engines.items():
            if engine == "none":
                continue
            for case, runs in cases.items():
                rps = median_of(runs, "rps")
                ref = engines.get(SAME_DB.get(engine, ""), {}).get(case)
                ratio_db = f"{rps / median_of(ref, 'rps'):.2f}" if ref else "-"
                ratio_ceiling = f"{rps / ceiling:.2f}" if ceiling else "-"
                bad = sum(r["non2xx"] + r["socket_errors"] for r in runs)
                wrapped = sum(r["pool_wrapped"] for r in runs) if case == "login" else 0
                note = f"  (login pool reused {wrapped}x)" if wrapped else ""
                conns = median_of(runs, "redis_conns_per_req")
                p50, p99 = (median_of(runs, k) / 1000 for k in ("p50_us", "p99_us"))
                print(
                    f"{engine:<15} {case:<10} {rps:>8,.0f} {p50:>7.1f} {p99:>7.1f}"
                    f" {ratio_ceiling:>8} {ratio_db:>13} {conns:>14.2f} {bad:>7}{note}"
                )


# --- the targets table (issue 21): ratios to the ceiling, the floor and the peers -------

#: The Django engine each engine is compared with (the same kind of store).
DJANGO_PEER = {"sk_sqlite": "db_sqlite", "sk_pg": "db_pg", "sk_redis": "cache_redis"}


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU model, load averages."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "load": list(os.getloadavg())}


def targets_table(report: dict[str, Any]) -> list[str]:
    """One markdown table: each server, case and engine with its req/s, p50/p99, and its
    ratios to the ceiling, to ``floor_redis``, to the matching Django engine, with
    Express's own ratio to its ceiling beside it, and the cost part's µs per request."""
    http, cost = report.get("http", {}), report.get("cost", {})
    start, end = report.get("machine_start", {}), report.get("machine_end", {})
    lines = []
    if start:
        load = " / ".join(f"{x:.2f}" for x in start["load"])
        load_end = " / ".join(f"{x:.2f}" for x in end.get("load", []))
        lines.append(
            f"Machine: {start['nproc']} cores (`nproc`), {start['cpu'] or 'CPU model unknown'};"
            f" load average (1/5/15 min) {load} at the start, {load_end} at the end."
        )
        lines.append("")
    express = http.get("express", {})
    express_ceiling = median_of(express["none"]["untouched"], "rps") if "none" in express else 0
    counted = any("instructions" in r for cases in cost.values() for r in cases.values())
    head = [
        "server",
        "case",
        "engine",
        "req/s",
        "p50 / p99 ms",
        "÷ ceiling",
        "÷ `floor_redis`",
        "÷ Django's",
        "Express ÷ its ceiling",
        "cost µs CPU + server" + (" (instr/req)" if counted else ""),
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + " --- |" * len(head))
    for server, engines in http.items():
        if server == "express" or "none" not in engines:
            continue
        ceiling = median_of(engines["none"]["untouched"], "rps")
        floor = engines.get("floor_redis", {})
        for case in CASES:
            ex = express.get("express_redis", {}).get(case)
            ex_ratio = f"{median_of(ex, 'rps') / express_ceiling:.2f}" if ex else "-"
            for engine, cases in engines.items():
                runs = cases.get(case)
                if engine == "none" or not runs:
                    continue
                rps = median_of(runs, "rps")
                p50, p99 = (median_of(runs, k) / 1000 for k in ("p50_us", "p99_us"))
                to_floor = f"{rps / median_of(floor[case], 'rps'):.2f}" if case in floor else "-"
                peer = engines.get(DJANGO_PEER.get(engine, ""), {}).get(case)
                to_peer = f"{rps / median_of(peer, 'rps'):.2f}" if peer else "-"
                c = cost.get(engine, {}).get(case)
                cost_cell = "-"
                if c:
                    cost_cell = f"{c['cpu_us']:,.0f} + {c['server_us']:,.0f}"
                    if "instructions" in c:
                        cost_cell += f" ({c['instructions'] / 1000:,.0f}k)"
                name = f"**{engine}**" if engine.startswith("sk_") else engine
                lines.append(
                    f"| {server} | {case} | {name} | {rps:,.0f} | {p50:.1f} / {p99:.1f}"
                    f" | {rps / ceiling:.2f} | {to_floor} | {to_peer} | {ex_ratio} | {cost_cell} |"
                )
    return lines


def print_targets(report: dict[str, Any]) -> None:
    print("\n### Targets: ratios in this run (markdown, for docs/performance.md)\n")
    print("\n".join(targets_table(report)))


# --- round trips ------------------------------------------------------------------------


def roundtrip_part() -> dict[str, Any]:
    # floor_redis sends the budget's round trips by construction (bench/floor.py).
    skip = ("none", "floor_redis")
    return {e: task("roundtrips", e)["roundtrips"] for e in ENGINES if e not in skip}


def print_roundtrips(results: dict[str, Any]) -> None:
    print("\n### Store round trips per request (in-process, Django test client, 10 requests)")
    print("SQL = statements + BEGIN/COMMIT of each transaction; Redis = client sends")
    print("(a pipeline is one); 'server' = commands Redis ran, incl. those inside scripts.\n")
    cases = list(BUDGET)
    print(f"{'engine':<15} " + " ".join(f"{c:>16}" for c in cases))
    print(f"{'(budget)':<15} " + " ".join(f"{BUDGET[c]:>16}" for c in cases))
    for engine, per_case in results.items():
        cells = []
        for case in cases:
            r = per_case.get(case)
            if r is None:
                cells.append("-")
            elif r["redis"] or r["redis_server_commands"]:
                cells.append(f"{r['redis']:g} (server {r['redis_server_commands']:g})")
            else:
                cells.append(f"{r['sql']:g} SQL")
        print(f"{engine:<15} " + " ".join(f"{c:>16}" for c in cells))


# --- cost per request (bench/cost.py) ---------------------------------------------------


def cost_part() -> dict[str, Any]:
    return {e: task("cost", e, module="bench.cost")["cost"] for e in ENGINES}


def print_cost(results: dict[str, Any]) -> None:
    print("\n### Cost per request, in-process (WSGI handler called directly, no HTTP server)")
    print("µs per request: wall; CPU of the Django process; CPU of the store server (Redis,")
    print("or this connection's PostgreSQL backend); 'over none' = both CPUs minus the bare")
    print("handler's, i.e. what the session costs the machine on top of the ceiling.\n")
    base = results.get("none", {}).get("untouched", {}).get("cpu_us", 0.0)
    counted = any("instructions" in r for cases in results.values() for r in cases.values())
    if counted:
        print("instr/req: instructions of the Django process per request (callgrind, exact to")
        print("a few parts in ten thousand; the store server not included).\n")
    head = f"{'engine':<15} {'case':<10} {'wall':>8} {'CPU':>8} {'server':>8} {'over none':>10}"
    print(head + (f" {'instr/req':>10}" if counted else ""))
    for engine, cases in results.items():
        for case, r in cases.items():
            over = r["cpu_us"] + r["server_us"] - base
            instr = f" {r['instructions']:>10,.0f}" if "instructions" in r else ""
            print(
                f"{engine:<15} {case:<10} {r['wall_us']:>8.0f} {r['cpu_us']:>8.0f}"
                f" {r['server_us']:>8.0f} {over:>10.0f}{instr}"
            )


# --- lost updates (issue 10) ------------------------------------------------------------


def burst_part() -> list[dict[str, Any]]:
    variants = [
        ("sk_pg", "/incr/", "session.incr('views')"),
        ("sk_pg", "/write/", "session['views'] += 1"),
        ("sk_pg", "/set/k{i}/", "session[f'k{i}'] = 1"),
        ("sk_redis", "/incr/", "session.incr('views')"),
        ("sk_redis", "/write/", "session['views'] += 1"),
        ("sk_redis", "/set/k{i}/", "session[f'k{i}'] = 1"),
        ("db_pg", "/write/", "session['views'] += 1"),
        ("db_pg", "/set/k{i}/", "session[f'k{i}'] = 1"),
        ("cache_redis", "/write/", "session['views'] += 1"),
        ("cache_redis", "/set/k{i}/", "session[f'k{i}'] = 1"),
    ]
    out = []
    for engine, path, label in variants:
        with Server("gunicorn", engine, workers=4) as server:
            cookie = prime(server, 1)[0]  # a session holding views=1
            local = threading.local()

            def hit(
                i: int,
                path: str = path,
                port: int = server.port,
                cookie: str = cookie,
                local: threading.local = local,
            ) -> int:
                conn = getattr(local, "conn", None)
                for _attempt in range(3):
                    if conn is None:
                        conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, 30)
                    try:
                        conn.request("GET", path.format(i=i), headers={"Cookie": cookie})
                        response = conn.getresponse()
                        response.read()
                        if response.getheader("Connection", "").lower() == "close":
                            conn.close()
                            conn = local.conn = None
                        return response.status
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = local.conn = None
                return 0

            started = time.perf_counter()
            with ThreadPoolExecutor(BURST_THREADS) as pool:
                statuses = list(pool.map(hit, range(BURST)))
            seconds = time.perf_counter() - started
            status, body = get(server.port, "/show/", cookie)
            shown = json.loads(body) if status == 200 else {}
        ok = statuses.count(200)
        if "{i}" in path:
            final, expected = shown.get("keys"), ok
        else:
            final, expected = (shown.get("views") or 1) - 1, ok
        row = {
            "engine": engine,
            "update": label,
            "sent": BURST,
            "ok": ok,
            "final": final,
            "lost": expected - (final or 0),
            "seconds": seconds,
        }
        print(f"  burst {row}", flush=True)
        out.append(row)
    return out


def print_burst(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n### Lost updates: {BURST} requests on one session from {BURST_THREADS} threads "
        "(gunicorn, 4 sync workers)"
    )
    print(f"{'engine':<12} {'update':<24} {'sent':>6} {'200 OK':>6} {'counted':>8} {'lost':>6}")
    for r in rows:
        lost = f"{r['lost']} ({r['lost'] / max(r['ok'], 1):.0%})"
        print(
            f"{r['engine']:<12} {r['update']:<24} {r['sent']:>6} {r['ok']:>6} "
            f"{r['final']!s:>8} {lost:>6}"
        )


# --- admin and purge --------------------------------------------------------------------


def admin_part() -> list[dict[str, Any]]:
    sizes = "10000,100000,1000000" if FULL else "10000,100000"
    sizes = os.environ.get("BENCH_ADMIN_SIZES", sizes)
    rows = []
    for engine in ("sk_pg", "sk_redis"):
        for row in task("admin", engine, BENCH_ADMIN="1", BENCH_ADMIN_SIZES=sizes)["admin"]:
            rows.append({"engine": engine, **row})
    return rows


def print_admin(rows: list[dict[str, Any]]) -> None:
    print("\n### Admin session list (first page) and listsessions (first 1,000 rows)")
    print(
        f"{'store':<10} {'sessions':>10} {'admin ms':>9} {'SQL/view':>9} {'Redis/view':>10}"
        f" {'listsessions ms':>15} {'fill s':>7}"
    )
    for r in rows:
        print(
            f"{r['engine']:<10} {r['sessions']:>10,} {r['admin_ms']:>9.1f} {r['admin_sql']:>9g}"
            f" {r['admin_redis']:>10g} {r['listsessions_1000_rows_ms']:>15.1f} {r['fill_s']:>7.1f}"
        )
    views = (("signed_in", "signed in"), ("rare_ip", "one address"), ("network", "a /24"))
    print("\n### Admin session list, filtered (first page): ms per view (round trips; rows shown)")
    print(f"{'store':<10} {'sessions':>10}" + "".join(f" {label:>20}" for _, label in views))
    for r in rows:
        trips = "admin_{}_sql" if r["engine"] == "sk_pg" else "admin_{}_redis"
        cells = [
            f"{r[f'admin_{name}_ms']:.1f} ({r[trips.format(name)]:g}; {r[f'admin_{name}_rows']})"
            for name, _ in views
        ]
        print(f"{r['engine']:<10} {r['sessions']:>10,}" + "".join(f" {c:>20}" for c in cells))


def purge_part() -> dict[str, Any]:
    extra = {"BENCH_DEFAULT_DB": "pg"}
    if FULL:
        extra.update(BENCH_PURGE_EXPIRED="1000000", BENCH_PURGE_LIVE="100000")
    result: dict[str, Any] = task("purge", "db_pg", **extra)["purge"]
    return result


def print_purge(result: dict[str, Any]) -> None:
    print(
        f"\n### Purge on PostgreSQL: {result['expired']:,} expired + {result['live']:,} live "
        "sessions"
    )
    print(
        f"{'command':<26} {'seconds':>8} {'rows/s':>9} {'statements':>10} {'DELETEs':>7}"
        f" {'longest DELETE ms':>17}"
    )
    for name in ("sessionkit purgesessions", "django clearsessions"):
        r = result[name]
        print(
            f"{name:<26} {r['seconds']:>8.2f} {r['rows_per_s']:>9,.0f} {r['statements']:>10}"
            f" {r['deletes']:>7} {r['longest_delete_ms']:>17.1f}"
        )
    for key in (
        "sessionkit live survived",
        "sessionkit expired left",
        "django live survived",
        "django expired left",
    ):
        print(f"{key}: {result[key]}")


def spread_part() -> list[dict[str, Any]]:
    """How a Redis Cluster's masters share the work (bench/spread.py, its own process)."""
    out = WORK / "spread.json"
    env = {**os.environ, "BENCH_SPREAD_OUT": str(out)}
    subprocess.run([str(VENV / "python"), "-m", "bench.spread"], cwd=ROOT, env=env, check=True)
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return rows


def print_spread(rows: list[dict[str, Any]]) -> None:
    from bench.spread import print_table

    print_table(rows)


# --- main -------------------------------------------------------------------------------


def main() -> int:
    if sys.argv[1:2] == ["--table"]:  # the targets table again, from a run's results.json
        print_targets(json.loads(Path(sys.argv[2]).read_text()))
        return 0
    started = time.monotonic()
    print(
        f"mode {'full' if FULL else 'quick'}: parts {' '.join(PARTS)}; servers {' '.join(SERVERS)};"
        f" {REPS} x {DURATION:g}s per case; work dir {WORK}",
        flush=True,
    )
    task("setup", "sk_sqlite")
    task("setup", "sk_pg")
    report: dict[str, Any] = {"machine_start": machine()}
    printers = {
        "roundtrips": (roundtrip_part, print_roundtrips),
        "cost": (cost_part, print_cost),
        "http": (http_part, print_http),
        "burst": (burst_part, print_burst),
        "admin": (admin_part, print_admin),
        "purge": (purge_part, print_purge),
        "spread": (spread_part, print_spread),
    }
    for part in PARTS:
        t = time.monotonic()
        print(f"\n== {part}", flush=True)
        report[part] = printers[part][0]()
        print(f"  ({time.monotonic() - t:.0f} s)", flush=True)
    report["machine_end"] = machine()
    print("\n\n======== results ========")
    for part in PARTS:
        printers[part][1](report[part])
    if "http" in report:
        print_targets(report)
    (WORK / "results.json").write_text(json.dumps(report, indent=1))
    print(f"\nraw results: {WORK / 'results.json'}; total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
