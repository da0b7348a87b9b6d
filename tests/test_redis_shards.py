"""Index shards on Redis, and the move from the single ``{idx}`` index without downtime.

The "before" data is written by the layout earlier releases used: a store with
``INDEX_SHARDS = 1`` writes exactly that single-tag index, and release 0.1.0's sessions
sit in ``exp`` and ``seen`` only (tests/fixtures/format-1.json). A store with shards over
the same prefix must keep loading, listing, counting and revoking all of them, move each
into its shard at its next save or touch, and ``reindexsessions`` must finish the move.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from django_sessionkit.stores.base import Changes
from django_sessionkit.stores.redis import RedisStore
from django_sessionkit.stores.redis.keys import shard_tags
from tests.command_helpers import run
from tests.redis_fixtures import delete_prefix, new_prefix, store_config
from tests.redis_servers import Cluster, Standalone
from tests.store_contract import make_record, new_key

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "format-1.json").read_text())
Setup = Standalone | Cluster


@pytest.fixture(params=["standalone", "cluster"])
def setup(request: pytest.FixtureRequest) -> Setup:
    name = "redis_standalone" if request.param == "standalone" else "redis_cluster"
    found: Setup = request.getfixturevalue(name)
    return found


@pytest.fixture
def prefix(setup: Setup) -> Iterator[str]:
    chosen = new_prefix()
    yield chosen
    delete_prefix(setup, chosen)


def store_on(setup: Setup, prefix: str, shards: int) -> RedisStore:
    location, options = store_config(setup)
    return RedisStore(location, {**options, "PREFIX": prefix, "INDEX_SHARDS": shards})


def raw(store: RedisStore) -> Any:
    from django_sessionkit.stores.redis import connection

    return connection.sync_client(store.config)


def legacy_members(store: RedisStore) -> set[str]:
    return set(raw(store).zrange(store.exp_index, 0, -1))


def written_before(setup: Setup, prefix: str) -> dict[str, Any]:
    """Sessions in the single-index layout: four by the current code with one shard,
    and one of release 0.1.0 (in exp and seen only, its place unknown)."""
    old = store_on(setup, prefix, 1)
    keys = {
        "alice-1": old.save(new_key(), make_record(user_id="1", ip="10.0.0.1"), must_create=True),
        "alice-2": old.save(new_key(), make_record(user_id="1", ip="10.0.0.2"), must_create=True),
        "bob": old.save(new_key(), make_record(user_id="2", ip="10.0.1.1"), must_create=True),
        "anon": old.save(new_key(), make_record(ip="192.0.2.9"), must_create=True),
    }
    named: dict[str, Any] = dict.fromkeys(keys)
    found = {k: r for k, r in old.list(limit=10)}
    assert len(found) == 4
    by_user = {("1", "10.0.0.1"): "alice-1", ("1", "10.0.0.2"): "alice-2"}
    by_user |= {("2", "10.0.1.1"): "bob", (None, "192.0.2.9"): "anon"}
    for key, record in found.items():
        named[by_user[(record.user_id, record.ip)]] = key
    ancient = FIXTURE["database_row"]["key"]
    fields = dict(FIXTURE["redis_hash"])
    now_us = int(timezone.now().timestamp() * 1_000_000)
    fields["e"], fields["l"] = str(now_us + 3_600_000_000), str(now_us)
    client = raw(old)
    client.hset(old.session_key(ancient), mapping=fields)
    client.pexpire(old.session_key(ancient), 3_600_000)
    client.zadd(old.exp_index, {ancient: fields["e"]})
    client.zadd(old.seen_index, {ancient: "-" + fields["l"]})
    named["ancient"] = ancient
    old.close()
    assert all(named.values())
    return named


def test_the_single_index_is_read_and_emptied_without_downtime(setup: Setup, prefix: str) -> None:
    before = written_before(setup, prefix)
    store = store_on(setup, prefix, 16)
    try:
        assert len(legacy_members(store)) == 5
        # Everything loads, lists, counts and filters, from both layouts at once.
        assert all(store.load(key) is not None for key in before.values())
        assert {k for k, _ in store.list(limit=50)} == set(before.values())
        assert store.count() == 5
        signed_in = {k for k, _ in store.list(signed_in=True, limit=50)}
        assert signed_in == {before["alice-1"], before["alice-2"], before["bob"]}
        assert {k for k, _ in store.list(ip="10.0.0.0/24", limit=50)} == {
            before["alice-1"],
            before["alice-2"],
        }
        # A save and a touch move a session into its shard.
        saved = store.load(before["alice-1"])
        assert saved is not None
        store.save(before["alice-1"], saved, changes=Changes(set={"x": 1}))
        store.touch(before["anon"], timezone.now() + timedelta(hours=2), timezone.now())
        left = legacy_members(store)
        assert before["alice-1"] not in left and before["anon"] not in left
        assert len(left) == 3
        assert {k for k, _ in store.list(limit=50)} == set(before.values())
        # Revoking reaches sessions in either layout.
        assert store.delete_for_user("2") == 1
        assert before["bob"] not in {k for k, _ in store.list(limit=50)}
        # reindexsessions finishes the move.
        with override_settings(
            SESSIONKIT={
                "STORE": {
                    "BACKEND": "django_sessionkit.stores.redis.RedisStore",
                    "LOCATION": store.location,
                    "OPTIONS": store.options,
                }
            }
        ):
            out = run("reindexsessions", "--batch-size", "1")
            assert "Moved 2 sessions" in out and "nothing is left" in out, out
            assert "Nothing to move" in run("reindexsessions")
        assert legacy_members(store) == set()
        assert {k for k, _ in store.list(limit=50)} == set(before.values()) - {before["bob"]}
        assert store.count() == 4
        assert {k for k, _ in store.list(ip="10.0.0.0/24", limit=50)} == {
            before["alice-1"],
            before["alice-2"],
        }
        # Nothing is written to the single index any more.
        key = new_key()
        store.save(key, make_record(user_id="3"), must_create=True)
        assert legacy_members(store) == set()
        assert store.shards.base_of(key) != store.index_base
    finally:
        store.close()


def test_one_shard_is_the_single_index_of_earlier_releases(setup: Setup, prefix: str) -> None:
    store = store_on(setup, prefix, 1)
    try:
        key = new_key()
        store.save(key, make_record(), must_create=True)
        assert store.shards.bases == (store.index_base,) and store.shards.legacy is None
        assert legacy_members(store) == {key}
        assert list(store.reindex()) == []
    finally:
        store.close()


def test_shards_land_on_every_master_of_a_cluster(redis_cluster: Cluster, prefix: str) -> None:
    store = store_on(redis_cluster, prefix, 16)
    try:
        for _ in range(64):
            store.save(new_key(), make_record(), must_create=True)
        client = raw(store)
        holders = {
            client.get_node_from_key(base + "exp").name
            for base in store.shards.bases
            if client.zcard(base + "exp")
        }
        assert len(holders) == len(redis_cluster.nodes)
    finally:
        store.close()


def test_shard_tags_spread_evenly_over_common_master_counts() -> None:
    from redis.crc import key_slot

    slots = [key_slot(tag.encode()) for tag in shard_tags(16)]
    for masters in (3, 4, 6, 8):
        per_master = [0] * masters
        for slot in slots:
            per_master[slot * masters // 16384] += 1
        assert max(per_master) <= -(-16 // masters), (masters, per_master)
    assert len(set(shard_tags(16))) == 16 and shard_tags(1) == ("idx",)


@pytest.mark.parametrize("shards", [0, 1000, "4"])
def test_a_wrong_shard_count_is_refused(shards: Any) -> None:
    problems = RedisStore.check("redis://127.0.0.1:6379/0", {"INDEX_SHARDS": shards})
    assert any("INDEX_SHARDS" in p for p in problems), problems
