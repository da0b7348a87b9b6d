"""Benchmark part ``spread``: how the masters of a Redis Cluster share the session store's
work, with the index in one hash tag (``INDEX_SHARDS = 1``, the layout of earlier
releases) and spread over 16 shards (the default).

It starts its own Clusters of 3 and of 6 masters on spare ports (as the tests do), drives
a write-heavy stream through ``RedisStore`` itself (new sessions, visit counters, logins
that rotate the id), and prints per master its share of the keys, of the commands
(``INFO commandstats`` deltas, the calls scripts make included) and of the memory
(``INFO memory`` deltas), each against the fair share (1 / masters). Not a timed test.

    .venv/bin/python -m bench.spread            # or BENCH_PARTS=spread bash bench/run
    BENCH_SPREAD_SESSIONS=20000 .venv/bin/python -m bench.spread
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if not settings.configured:
    settings.configure(USE_TZ=True, TIME_ZONE="UTC", SECRET_KEY="bench-spread")
    django.setup()

from django.utils import timezone  # noqa: E402

from django_sessionkit.stores.base import Changes, SessionRecord  # noqa: E402
from django_sessionkit.stores.redis import RedisStore  # noqa: E402
from tests.redis_servers import Cluster, Servers  # noqa: E402
from tests.store_contract import make_record, new_key  # noqa: E402

SESSIONS = int(os.environ.get("BENCH_SPREAD_SESSIONS", "3000"))
COUNTS = 3  # counter saves per session
LOGINS = SESSIONS // 4  # sign-ins: a new id with the user, the old one deleted
MASTERS = [int(m) for m in os.environ.get("BENCH_SPREAD_MASTERS", "3 6").split()]
LAYOUTS = {"single {idx} (INDEX_SHARDS=1)": 1, "16 shards (default)": 16}
IGNORED = {"info", "dbsize", "cluster", "ping", "command", "script", "config", "client"}


def node_stats(cluster: Cluster) -> list[dict[str, int]]:
    stats = []
    for conn in cluster.clients():
        with conn:
            calls = sum(
                int(v["calls"])
                for k, v in conn.info("commandstats").items()
                if k.removeprefix("cmdstat_") not in IGNORED
            )
            stats.append(
                {
                    "keys": int(conn.dbsize()),
                    "calls": calls,
                    "memory": int(conn.info("memory")["used_memory"]),
                }
            )
    return stats


def stream(store: RedisStore) -> Iterator[str]:
    """The workload; yields what it did, one word per store call."""
    keys = []
    for i in range(SESSIONS):
        key = new_key()
        store.save(
            key,
            make_record(data={"views": 0, "cart": [i]}, ip=f"10.{i % 200}.0.1"),
            must_create=True,
        )
        keys.append(key)
        yield "create"
    for _round in range(COUNTS):
        for key in keys:
            record = store.load(key)
            assert record is not None
            data = dict(record.data, views=record.data["views"] + 1)
            store.save(
                key, record.with_data(data, record.version), changes=Changes(increments={"views": 1}, loaded=record)
            )
            yield "counter"
    for n, key in enumerate(keys[:LOGINS]):
        record = store.load(key)
        assert record is not None
        fresh = new_key()
        now = timezone.now()
        signed_in = SessionRecord(
            data=dict(record.data, _auth_user_id=str(n)),
            expires_at=now + (record.expires_at - record.created_at),
            created_at=record.created_at,
            last_seen=now,
            user_id=str(n),
            ip=record.ip,
            user_agent=record.user_agent,
        )
        store.save(fresh, signed_in, must_create=True)
        store.delete(key)
        yield "login"


def measure(cluster: Cluster, shards: int) -> dict[str, Any]:
    store = RedisStore(
        cluster.nodes, {"MODE": "cluster", "PREFIX": f"spread{shards}:", "INDEX_SHARDS": shards}
    )
    for conn in cluster.clients():  # a clean slate and warm scripts on every node
        with conn:
            conn.flushall()
            conn.config_resetstat()
    before = node_stats(cluster)
    started = time.monotonic()
    operations = sum(1 for _ in stream(store))
    seconds = time.monotonic() - started
    after = node_stats(cluster)
    store.close()
    delta = [{k: a[k] - b[k] for k in a} for a, b in zip(after, before, strict=True)]
    totals = {k: sum(d[k] for d in delta) for k in ("keys", "calls", "memory")}
    live = SESSIONS  # logins replace a session with another
    return {
        "masters": len(cluster.servers),
        "shards": shards,
        "nodes": delta,
        "totals": totals,
        "operations": operations,
        "seconds": seconds,
        "bytes_per_session": totals["memory"] / live,
        "calls_per_operation": totals["calls"] / operations,
    }


def worst(result: dict[str, Any], what: str) -> float:
    total = result["totals"][what] or 1
    fair = 1 / result["masters"]
    return max(node[what] / total for node in result["nodes"]) / fair


def run() -> list[dict[str, Any]]:
    servers = Servers()
    results = []
    try:
        for masters in MASTERS:
            cluster = servers.cluster(masters=masters, preferred=())
            for label, shards in LAYOUTS.items():
                result = measure(cluster, shards)
                result["layout"] = label
                results.append(result)
                print(
                    f"  {masters} masters, {label}: {result['operations']:,} store calls in {result['seconds']:.1f} s",
                    flush=True,
                )
            cluster.stop()
    finally:
        servers.stop_all()
    return results


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"\nspread over Cluster masters ({SESSIONS:,} sessions, {COUNTS} counter saves each, {LOGINS:,} logins); share of the whole per master, and the largest share / fair share"
    )
    print(
        f"{'masters':>7}  {'layout':<28} {'keys %':<30} {'commands %':<30} {'memory %':<30} {'max/fair keys cmds mem':>24}"
    )
    for r in results:
        shares = {
            what: " ".join(f"{100 * n[what] / (r['totals'][what] or 1):4.0f}" for n in r["nodes"])
            for what in ("keys", "calls", "memory")
        }
        ratios = " ".join(f"{worst(r, what):5.2f}" for what in ("keys", "calls", "memory"))
        print(
            f"{r['masters']:>7}  {r['layout']:<28} {shares['keys']:<30} {shares['calls']:<30} {shares['memory']:<30} {ratios:>24}"
        )
    print("\nper session and per store call, 16 shards:")
    for r in results:
        if r["shards"] == 16:
            print(
                f"  {r['masters']} masters: {r['bytes_per_session']:,.0f} bytes of memory per live session (hash and index entries), {r['calls_per_operation']:.1f} Redis commands per store call (scripts' own calls included)"
            )


def main() -> int:
    results = run()
    print_table(results)
    out = Path(os.environ.get("BENCH_SPREAD_OUT", "/tmp/sessionkit-spread.json"))
    out.write_text(json.dumps(results, indent=1))
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
