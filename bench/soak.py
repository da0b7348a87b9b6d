"""Soak under store faults (``bash bench/soak``, part ``soak``): does anyone lose anything?

For each store (``redis``: RedisStore; ``express``: ExpressRedisStore, connect-redis's
layout; ``pg``: the database store on PostgreSQL) and each fault in turn, a fresh
gunicorn (4 sync workers) serves the bench app, and virtual clients (one user each) run a
mixed stream: password logins, ``session.incr`` counters, ``whoami`` reads, logouts and
admin revokes (``delete_for_user``, from a request of its own). Each client keeps its
expected state (see :class:`bench.faultlib.Client`) and checks every 200 against it, and
once more at the end, after the fault is over.

Faults (during a window after a short warm-up, then a few seconds to settle):

* ``none``: no fault (the baseline);
* ``stop``: ``kill -STOP`` Redis for 2 s, ``-CONT``, twice;
* ``restart``: a graceful restart of Redis (SIGTERM, AOF on), 0.5 s down, twice;
* ``clientkill``: ``CLIENT KILL TYPE normal`` five times a second;
* ``proxy``: gunicorn reaches Redis through a proxy that loses a reply four times a
  second, after Redis ran the command: the connection cut at once (the client retries)
  or held silent (the client times out);
* ``lock``: another connection holds ``LOCK TABLE django_sessionkit_session IN ACCESS
  EXCLUSIVE MODE`` for 3 s, twice;
* ``selftest`` (only when asked for, RedisStore only): not a fault but damage done on
  purpose (counters bumped, sessions deleted behind the site's back), to show that the
  checks see what they claim to see.

``SOAK_STORES`` (``redis express pg``), ``SOAK_FAULTS`` (all that apply), ``SOAK_CLIENTS``
(12), ``SOAK_WINDOW`` (9 s). Prints the table and ``RESULT {json}`` last.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.faultlib import (
    Client,
    Gunicorn,
    Proxy,
    RedisServer,
    Tally,
    log,
    machine,
    ms,
    run_clients,
    table_locked,
    users,
)

STORES = os.environ.get("SOAK_STORES", "redis express pg").split()
ENGINES = {"redis": "sk_redis", "express": "sk_express", "pg": "sk_pg"}
REDIS_FAULTS = ["none", "stop", "restart", "clientkill", "proxy"]
FAULTS = {"redis": REDIS_FAULTS, "express": REDIS_FAULTS, "pg": ["none", "lock"]}
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "12"))
WARM = 2.0
WINDOW = float(os.environ.get("SOAK_WINDOW", "9"))
SETTLE = 3.0
LABELS = {
    "none": "none",
    "stop": "STOP 2 s, CONT; x2",
    "restart": "restart (TERM, AOF); x2",
    "clientkill": "CLIENT KILL, 5/s",
    "proxy": "reply lost, 4/s",
    "lock": "LOCK TABLE 3 s; x2",
    "selftest": "self-test (damage)",
}


class Injector:
    """Runs one fault in its own thread during [WARM, WARM + WINDOW] of the phase; always
    leaves the store running and unlocked when it ends."""

    def __init__(
        self, fault: str, redis: RedisServer, proxy: Proxy | None, db: str, prefix: str
    ) -> None:
        self.fault, self.redis, self.proxy, self.db = fault, redis, proxy, db
        self.prefix = prefix
        self.done = threading.Event()
        self.count = 0  # faults injected (kills, drops armed, stops...)
        self.detail = ""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.thread.start()

    def join(self) -> None:
        self.done.set()
        self.thread.join(60)
        if self.error is not None:
            raise RuntimeError(f"fault {self.fault} failed: {self.error!r}") from self.error

    def _at(self, seconds: float) -> bool:
        """Sleep until ``seconds`` after the phase's start; False when told to end."""
        return not self.done.wait(max(0.0, self.t0 + seconds - time.monotonic()))

    def _run(self) -> None:
        try:
            getattr(self, f"_{self.fault}")()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def _none(self) -> None:
        pass

    def _stop(self) -> None:
        for k in range(2):
            if not self._at(WARM + k * WINDOW / 2):
                return
            self.redis.pause()
            self.count += 1
            try:
                self._at(WARM + k * WINDOW / 2 + 2.0)
            finally:
                self.redis.resume()

    def _restart(self) -> None:
        for k in range(2):
            if not self._at(WARM + k * WINDOW / 2):
                return
            self.redis.restart(0.5)
            self.count += 1

    def _clientkill(self) -> None:
        killed = 0
        for k in range(int(WINDOW * 5)):
            if not self._at(WARM + k * 0.2):
                break
            killed += int(self.redis.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
            self.count += 1
        self.detail = f"{killed} connections killed"

    def _proxy(self) -> None:
        assert self.proxy is not None
        # Mostly scripts (saves, touches, revokes); now and then whatever comes next (a read).
        plan = [(b"EVAL", "cut"), (b"EVAL", "stall"), (b"*", "cut"), (b"EVAL", "cut")]
        plan += [(b"EVAL", "stall"), (b"*", "stall")]
        for k in range(int(WINDOW * 4)):
            if not self._at(WARM + k * 0.25):
                break
            marker, mode = plan[k % len(plan)]
            self.proxy.arm(marker, mode)
            self.count += 1
        self.detail = ", ".join(f"{n} {mode}" for mode, n in sorted(self.proxy.dropped.items()))

    def _selftest(self) -> None:
        """Not a fault: damage on purpose, to show that the checks see it. A quarter of the
        RedisStore sessions get their counter bumped, another quarter are deleted."""
        if not self._at(WARM + 2.0):
            return
        keys = sorted(self.redis.command("KEYS", f"{self.prefix}s:*"))
        log(f"  selftest: {len(keys)} sessions")
        quarter = max(1, len(keys) // 4)
        for key in keys[:quarter]:
            self.redis.command("HINCRBY", key, "d:views", "7")
        for key in keys[quarter : 2 * quarter]:
            self.redis.command("DEL", key)
        self.count = 2 * quarter
        self.detail = f"{quarter} counters bumped, {quarter} sessions deleted"

    def _lock(self) -> None:
        for k in range(2):
            if not self._at(WARM + k * WINDOW / 2):
                return
            with table_locked(self.db):
                self.count += 1
                self._at(WARM + k * WINDOW / 2 + 3.0)


def phase(
    store: str, fault: str, redis: RedisServer, ids: dict[str, str], work: Path, seed: int
) -> dict[str, Any]:
    started = time.monotonic()
    engine = ENGINES[store]
    proxy = Proxy(redis.port) if fault == "proxy" else None
    env = {
        "BENCH_REDIS_URL": proxy.url if proxy else redis.url,
        "BENCH_REDIS_PREFIX": f"soak-{store}-{fault}-{os.getpid()}:",
    }
    try:
        with Gunicorn(engine, work, f"{store}-{fault}", workers=4, **env) as server:
            tally = Tally()
            rng = random.Random(seed)
            clients = [
                Client(server.port, f"soak{i}", ids[f"soak{i}"], tally, random.Random(rng.random()))
                for i in range(CLIENTS)
            ]
            db = os.environ.get("BENCH_PG_DB", "")
            injector = Injector(fault, redis, proxy, db, env["BENCH_REDIS_PREFIX"])
            injector.start()
            try:
                run_clients(clients, WARM + WINDOW + SETTLE)
            finally:
                injector.join()
            time.sleep(0.6)  # the breakers' cool-down: the final check meets a closed circuit
            deadline = time.monotonic() + 20
            checkers = [threading.Thread(target=c.final_check, args=(deadline,)) for c in clients]
            for thread in checkers:
                thread.start()
            for thread in checkers:
                thread.join(40)
            counts = server.log_counts()
    finally:
        if proxy is not None:
            proxy.close()
    row = {
        "store": store,
        "fault": fault,
        "requests": tally.requests,
        "503": tally.count(503),
        "other_5xx": tally.other_5xx(),
        "other": tally.other(),
        **{kind: tally.problems.get(kind, 0) for kind in Tally.KINDS},
        "p50": tally.percentile(0.5),
        "p99": tally.percentile(0.99),
        "max": max(tally.latencies, default=0.0),
        "max_by_op": {op: max(v) for op, v in tally.by_op.items()},
        "held": max(tally.held.values(), default=0.0),
        "held_by_op": dict(tally.held),
        "held_how": dict(tally.held_how),
        "injected": injector.count,
        "detail": injector.detail,
        "gunicorn": counts,
        "notes": tally.notes,
        "seconds": time.monotonic() - started,
    }
    log(
        f"  {store:<8} {fault:<11} {row['requests']:>6} requests, {row['503']:>5} 503,"
        f" {row['other_5xx']} other 5xx, lost {row['lost']}, signed out {row['signed_out']},"
        f" counters off {row['counter_off']}, max {ms(row['max'])} ({row['seconds']:.0f} s)"
    )
    return row


COLUMNS = (
    ("store", "store", 8, "s"),
    ("fault", "fault", 24, "s"),
    ("requests", "requests", 8, "d"),
    ("503", "503", 6, "d"),
    ("other_5xx", "5xx≠503", 7, "d"),
    ("lost", "lost", 5, "d"),
    ("signed_out", "signed out", 10, "d"),
    ("counter_off", "counters off", 12, "d"),
    ("revived", "revived", 7, "d"),
    ("other", "4xx/none", 8, "d"),
    ("p99", "p99", 7, "t"),
    ("max", "max", 7, "t"),
    ("held", "held", 7, "t"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n### Soak under faults: {CLIENTS} clients, gunicorn 4 sync workers, per phase"
        f" {WARM:g} s warm-up + {WINDOW:g} s of faults + {SETTLE:g} s to settle, then a final check"
    )
    print(
        "lost: should have a session, none found; signed out: should be signed in, is not"
        " (a lost session counts in both);\ncounters off: outside [acknowledged,"
        " acknowledged + increments answered 503]; revived: a logged-out or revoked session"
        " answers again;\n4xx/none: other 4xx answers and requests with no answer in 10 s"
        " (a hung worker);\np99, max: client side, waiting for a free worker included; held: the"
        " longest a worker spent on one request (its own clock)\n"
    )
    print(" ".join(f"{title:>{width}}" for _key, title, width, _f in COLUMNS))
    for row in rows:
        cells = []
        for key, _title, width, kind in COLUMNS:
            value = LABELS[row[key]] if key == "fault" else row[key]
            if kind == "t":
                cells.append(f"{ms(value):>{width}}")
            elif kind == "d":
                cells.append(f"{value:>{width},}")
            else:
                cells.append(f"{value:>{width}}")
        print(" ".join(cells))
    print()
    for row in rows:
        extra = []
        if row["detail"]:
            extra.append(row["detail"])
        slow = {op: s for op, s in row["held_by_op"].items() if s > 0.6}
        if slow:
            extra.append(
                "workers held over 0.6 s by: "
                + ", ".join(
                    f"{op} {ms(s)} (HTTP {row['held_how'][op][0]}, sent at"
                    f" {row['held_how'][op][1]:.1f} s)"
                    for op, s in sorted(slow.items())
                )
            )
        g = row["gunicorn"]
        if g["worker_timeouts"] or g["extra_boots"]:
            extra.append(
                f"gunicorn worker timeouts {g['worker_timeouts']}, restarts {g['extra_boots']}"
            )
        if row["wrong_user"] or row["unresolved"]:
            extra.append(f"wrong user {row['wrong_user']}, unresolved {row['unresolved']}")
        if row["revoke_0"]:
            extra.append(f"revokes that reported 0 sessions ended: {row['revoke_0']}")
        if extra:
            print(f"{row['store']} / {row['fault']}: " + "; ".join(extra))
        for note in row["notes"]:
            print(f"  ! {row['store']} / {row['fault']}: {note}")


def main() -> int:
    started = time.monotonic()
    work = Path(os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="sessionkit-soak-"))
    log(f"== soak ({machine()})")
    wanted = os.environ.get("SOAK_FAULTS", "").split()
    ids = users("sk_pg", work)
    redis = RedisServer(work)
    rows = []
    try:
        seed = 0
        for store in STORES:
            for fault in FAULTS[store] + (["selftest"] if "selftest" in wanted else []):
                if wanted and fault not in wanted:
                    continue
                if fault == "selftest" and store != "redis":
                    continue
                seed += 1
                rows.append(phase(store, fault, redis, ids, work, seed))
    finally:
        with contextlib.suppress(Exception):
            redis.stop()
    print_table(rows)
    log(f"\n  soak: {time.monotonic() - started:.0f} s")
    (work / "soak.json").write_text(json.dumps(rows, indent=1, default=str))
    print("RESULT " + json.dumps(rows, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
