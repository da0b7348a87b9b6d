"""Hung-Redis timings (``bash bench/soak``, part ``timings``): what a stalled Redis costs.

gunicorn (4 sync workers) serves the bench app on the Redis store, default options
(0.5 s socket timeouts, circuit breaker cool-down 0.5 s); our own redis-server, AOF on,
on a spare port. Eight signed-in clients send ``session.incr`` requests back to back,
one at a time each (so there are always more requests than workers), while:

1. ``kill -STOP`` Redis for 3 s, then ``kill -CONT``. Printed: the first 503 after the
   STOP, the following requests' times, the longest any request (so any worker) was
   held, and the time from CONT until every request succeeds again.
2. A restart: ``SIGTERM`` (graceful: the AOF is flushed), 1 s down, started again on the
   same port. Then every client checks its session: none lost, nobody signed out, each
   counter within what its 200s and 503s allow.

``python -m bench.faults`` (bench/soak sets BENCH_WORK and BENCH_PG_DB) prints the tables
and ``RESULT {json}`` last.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.faultlib import (
    Client,
    Gunicorn,
    RedisServer,
    Reply,
    Tally,
    log,
    machine,
    ms,
    run_clients,
    users,
)

CLIENTS = int(os.environ.get("SOAK_TIMING_CLIENTS", "8"))
WORKERS = 4
STOPPED = 3.0  # seconds Redis stays stopped
DOWN = 1.0  # seconds Redis stays down in the restart
SOCKET_TIMEOUT = 0.5  # RedisStore's default
TARGETS = {
    "first_503": 1.5,
    "following": 0.010,
    "recovery": 1.0,
}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def handled(reply: Reply) -> float:
    """Seconds the worker spent on the request (its own clock, from bench/soak_views.report)."""
    try:
        return float(reply.headers.get("x-handled-ms", "nan")) / 1000
    except ValueError:
        return float("nan")


def stop_cont(replies: list[tuple[str, Reply]], t_stop: float, t_cont: float) -> dict[str, Any]:
    done = [r for _op, r in replies]
    in_flight = [r for r in done if r.sent < t_stop < r.sent + r.seconds]
    during = sorted((r for r in done if t_stop <= r.sent < t_cont), key=lambda r: r.sent)
    # The first request to be answered 503 after the STOP: one that was in flight then
    # (sent before, blocked by it) or sent after it.
    first = min(
        (r for r in in_flight + during if r.status == 503),
        key=lambda r: r.sent + r.seconds,
        default=None,
    )
    # Each worker's first 503 waited for the socket timeout; the following ones should not.
    first_per_worker: dict[str, Reply] = {}
    for r in sorted(in_flight + during, key=lambda r: r.sent + r.seconds):
        if r.status == 503:
            first_per_worker.setdefault(r.headers.get("x-worker", "?"), r)
    firsts = {id(r) for r in first_per_worker.values()}
    following = [r for r in during if r.status == 503 and id(r) not in firsts]
    probes = [r for r in following if handled(r) >= SOCKET_TIMEOUT * 0.8]
    instant = [r for r in following if handled(r) < SOCKET_TIMEOUT * 0.8]
    outage = [r for r in done if r.sent < t_cont and r.sent + r.seconds > t_stop]
    per_worker_blocked: dict[str, float] = defaultdict(float)
    for r in outage:
        worker = r.headers.get("x-worker", "?")
        per_worker_blocked[worker] = max(per_worker_blocked[worker], handled(r))
    after = sorted(
        (r for r in done if r.sent + r.seconds >= t_cont), key=lambda r: r.sent + r.seconds
    )
    first_ok = next((r.sent + r.seconds - t_cont for r in after if r.status == 200), None)
    bad_after = [r.sent + r.seconds - t_cont for r in after if r.status != 200]
    answered_ok_since = max(bad_after, default=0.0)
    return {
        "requests_during": len(during),
        "status_during": {s: sum(1 for r in during if r.status == s) for s in {200, 503}},
        "other_during": sum(1 for r in during if r.status not in (200, 503)),
        "in_flight_at_stop": [(r.status, r.seconds) for r in in_flight],
        "first_503": None if first is None else first.seconds,
        "first_503_since_stop": None if first is None else first.sent + first.seconds - t_stop,
        "first_503_per_worker": sorted(r.seconds for r in first_per_worker.values()),
        "following": [r.seconds for r in following],
        "following_instant": [r.seconds for r in instant],
        "following_instant_worker": [handled(r) for r in instant],
        "probes": len(probes),
        "probe_seconds": [handled(r) for r in probes],
        "longest_client_wait": max((r.seconds for r in outage), default=0.0),
        "longest_worker_hold": max(per_worker_blocked.values(), default=0.0),
        "workers_seen": len(per_worker_blocked),
        "first_200_after_cont": first_ok,
        "last_error_after_cont": answered_ok_since,
        "errors_after_cont": len(bad_after),
    }


def restart_window(replies: list[tuple[str, Reply]], t_term: float, t_up: float) -> dict[str, Any]:
    done = [r for _op, r in replies]
    window = [r for r in done if r.sent < t_up and r.sent + r.seconds > t_term]
    after = [r for r in done if r.sent + r.seconds >= t_up]
    bad_after = [r.sent + r.seconds - t_up for r in after if r.status != 200]
    return {
        "requests": len(window),
        "503": sum(1 for r in window if r.status == 503),
        "other": sum(1 for r in window if r.status not in (200, 503)),
        "longest": max((r.seconds for r in window), default=0.0),
        "recovery": max(bad_after, default=0.0),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    started = time.monotonic()
    work = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="sessionkit-soak-"))
    log(f"== timings: hung Redis ({machine()})")
    ids = users("sk_redis", work)
    rng = random.Random(11)
    redis = RedisServer(work)
    result: dict[str, Any] = {}
    try:
        env = {"BENCH_REDIS_URL": redis.url, "BENCH_REDIS_PREFIX": f"timings-{os.getpid()}:"}
        with Gunicorn("sk_redis", work, "timings", workers=WORKERS, **env) as server:
            tally = Tally()
            clients = [
                Client(server.port, f"soak{i}", ids[f"soak{i}"], tally, rng) for i in range(CLIENTS)
            ]
            deadline = time.monotonic() + 30
            for client in clients:
                client.login(deadline)
            tally.keep_replies = True
            events: dict[str, float] = {}

            def stop_tick(elapsed: float) -> None:
                if elapsed >= 2.0 and "stop" not in events:
                    redis.pause()
                    events["stop"] = time.monotonic()
                if elapsed >= 2.0 + STOPPED and "cont" not in events:
                    redis.resume()
                    events["cont"] = time.monotonic()

            log(f"  STOP for {STOPPED:g} s under {CLIENTS} clients, {WORKERS} sync workers")
            run_clients(clients, 2.0 + STOPPED + 2.5, stop_tick, step=lambda c, d: c.incr())
            stop = stop_cont(tally.replies, events["stop"], events["cont"])
            stop_replies = len(tally.replies)

            def restart_tick(elapsed: float) -> None:
                if elapsed >= 1.5 and "term" not in events:
                    events["term"] = time.monotonic()
                    redis.restart(DOWN)
                    events["up"] = time.monotonic()

            log(f"  restart (SIGTERM, {DOWN:g} s down, start on the same port)")
            run_clients(clients, 1.5 + DOWN + 3.5, restart_tick, step=lambda c, d: c.incr())
            restart = restart_window(tally.replies[stop_replies:], events["term"], events["up"])
            deadline = time.monotonic() + 20
            for client in clients:
                client.final_check(deadline)
            counts = server.log_counts()
    finally:
        redis.stop()
    result = {
        "stop": stop,
        "restart": restart,
        "problems": dict(tally.problems),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "gunicorn": counts,
        "notes": tally.notes,
    }
    print_timings(result, tally)
    log(f"  ({time.monotonic() - started:.0f} s)")
    (work / "timings.json").write_text(json.dumps(result, indent=1, default=str))
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


def print_timings(result: dict[str, Any], tally: Tally) -> None:
    s, r = result["stop"], result["restart"]
    following, instant = s["following"], s["following_instant"]
    worker = s["following_instant_worker"]
    first = s["first_503"]
    print(
        f"\n### Hung Redis: kill -STOP for {STOPPED:g} s, then -CONT (gunicorn, {WORKERS} sync"
        f" workers, {CLIENTS} clients back to back; SOCKET_TIMEOUT 0.5 s, cool-down 0.5 s)\n"
    )
    rows = [
        (
            "first 503 after STOP (its request's time)",
            "-" if first is None else ms(first),
            "<= 1.5 s",
            verdict(first is not None and first <= TARGETS["first_503"]),
        ),
        (
            "each worker's first 503",
            ", ".join(ms(x) for x in s["first_503_per_worker"]),
            "<= 1.5 s",
            verdict(bool(s["first_503_per_worker"]) and max(s["first_503_per_worker"]) <= 1.5),
        ),
        (
            f"following 503s ({len(following)}): p50 / p99 / max",
            f"{ms(pct(following, 0.5))} / {ms(pct(following, 0.99))} / {ms(max(following))}"
            if following
            else "-",
            "p99 <= 10 ms",
            verdict(bool(following) and pct(following, 0.99) <= TARGETS["following"]),
        ),
        (
            f"  of which answered at once ({len(instant)}): p50 / p99 / max",
            f"{ms(pct(instant, 0.5))} / {ms(pct(instant, 0.99))} / {ms(max(instant))}"
            if instant
            else "-",
            "p99 <= 10 ms",
            verdict(bool(instant) and pct(instant, 0.99) <= TARGETS["following"]),
        ),
        (
            "  the same, on the worker's clock",
            f"{ms(pct(worker, 0.5))} / {ms(pct(worker, 0.99))} / {ms(max(worker))}"
            if worker
            else "-",
            "p99 <= 10 ms",
            verdict(bool(worker) and pct(worker, 0.99) <= TARGETS["following"]),
        ),
        (
            "  of which breaker probes (worker held)",
            f"{s['probes']}"
            + (
                f", {ms(min(s['probe_seconds']))}-{ms(max(s['probe_seconds']))}"
                if s["probes"]
                else ""
            ),
            "-",
            "",
        ),
        (
            "longest a worker was held (its own clock)",
            ms(s["longest_worker_hold"]),
            "<= first timeout",
            verdict(s["longest_worker_hold"] <= SOCKET_TIMEOUT + 0.1),
        ),
        (
            "longest a client waited (queue included)",
            ms(s["longest_client_wait"]),
            "<= first timeout",
            verdict(s["longest_client_wait"] <= SOCKET_TIMEOUT + 0.25),
        ),
        (
            "CONT -> first 200",
            "-" if s["first_200_after_cont"] is None else ms(s["first_200_after_cont"]),
            "-",
            "",
        ),
        (
            f"CONT -> last error ({s['errors_after_cont']} errors after CONT)",
            ms(s["last_error_after_cont"]),
            "<= 1 s",
            verdict(s["last_error_after_cont"] <= TARGETS["recovery"]),
        ),
    ]
    width = max(len(x[0]) for x in rows)
    print(f"{'':<{width}}  {'measured':>28}  {'target':>16}")
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>28}  {target:>16}  {met}")
    print(
        f"\nrequests sent while stopped: {s['requests_during']} ({s['status_during'].get(503, 0)}"
        f" 503, {s['status_during'].get(200, 0)} 200, {s['other_during']} other); in flight at"
        f" STOP: {', '.join(f'{st} after {ms(sec)}' for st, sec in s['in_flight_at_stop'])}"
    )
    p = result["problems"]
    print(f"\n### Redis restart: SIGTERM (AOF on), {DOWN:g} s down, started on the same port\n")
    print(
        f"requests in the window {r['requests']}, 503 {r['503']}, other {r['other']}, longest"
        f" {ms(r['longest'])}, last error {ms(r['recovery'])} after the restart"
    )
    print(
        f"sessions lost {p.get('lost', 0)}, users signed out {p.get('signed_out', 0)} (target"
        f" 0 and 0: {verdict(not p.get('lost') and not p.get('signed_out'))}); counters off"
        f" {p.get('counter_off', 0)}; wrong user {p.get('wrong_user', 0)}; unresolved"
        f" {p.get('unresolved', 0)}"
    )
    g = result["gunicorn"]
    print(
        f"whole run: {tally.requests} requests, "
        + ", ".join(f"{k} x{v}" for k, v in sorted(tally.statuses.items()))
        + f"; gunicorn worker timeouts {g['worker_timeouts']}, restarted workers"
        f" {g['extra_boots']}"
    )
    for note in result["notes"]:
        print(f"  ! {note}")


if __name__ == "__main__":
    sys.exit(main())
