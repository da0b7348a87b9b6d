"""RedisStore: the store contract on standalone Redis, Cluster, Sentinel and Valkey, plus
round-trip budgets, failover, a server stopped mid-test, layout at rest and system checks."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.test import override_settings
from django.utils import timezone

from django_sessionkit.stores.base import Changes, StoreUnavailable
from django_sessionkit.stores.redis import RedisStore
from tests.redis_fixtures import FAST_FAILURE, delete_prefix, make_store
from tests.redis_servers import Cluster, SentinelSetup, Standalone
from tests.store_contract import (
    FILTERS,
    StoreContract,
    make_record,
    new_key,
    reference,
    walk,
)

Setup = Standalone | Cluster | SentinelSetup


# --- the contract, once per mode --------------------------------------------------


class RedisContractExtras(StoreContract):
    """Redis-only checks every mode runs too."""

    def test_corrupt_values_load_as_missing_and_are_logged(
        self, store: RedisStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        key, _ = self.create(store, data={"a": 1})
        raw = redis_client_of(store)
        raw.hset(store.session_key(key), "d:a", "{not json")
        with caplog.at_level(logging.WARNING, logger="django_sessionkit"):
            assert store.load(key) is None
        assert "unreadable" in caplog.text
        other = new_key()
        raw.set(store.session_key(other), "not a hash")
        assert store.load(other) is None
        assert store.exists(other) is False

    def test_raw_session_ids_are_never_at_rest(self, store: RedisStore, setup: Setup) -> None:
        raw_ids = [secrets.token_urlsafe(32) for _ in range(4)]
        for i, raw_id in enumerate(raw_ids):
            key = hashlib.sha256(raw_id.encode()).hexdigest()
            store.save(key, make_record(data={"n": i}, user_id=str(i % 2)), must_create=True)
        dump = dump_prefix(setup, store.prefix)
        assert sum(len(k) for k in dump) > 0
        for raw_id in raw_ids:
            assert not any(raw_id in text for text in dump), raw_id

    def test_a_save_rewrites_only_the_metadata_changed_since_its_load(
        self, store: RedisStore
    ) -> None:
        key, loaded = self.create(store, data={"n": 1}, user_id="7")
        raw = redis_client_of(store)
        # Written meanwhile by another request; this one's metadata is still as it loaded it.
        raw.hset(store.session_key(key), mapping={"ip": "203.0.113.5", "ua": "Other"})
        later = loaded.last_seen + timedelta(seconds=5)
        same = dataclasses.replace(loaded, data={"n": 2}, last_seen=later)
        store.save(key, same, changes=Changes(set={"n": 2}, loaded=loaded))
        after = store.load(key)
        assert after is not None
        assert (after.ip, after.user_agent, after.user_id) == ("203.0.113.5", "Other", "7")
        assert (after.data, after.last_seen) == ({"n": 2}, later)
        # What did change since the load is written, a user that signed out removed.
        moved = dataclasses.replace(
            loaded, data={"n": 3}, user_id=None, ip="198.51.100.1", user_agent="New"
        )
        store.save(key, moved, changes=Changes(set={"n": 3}, loaded=loaded))
        after = store.load(key)
        assert after is not None
        assert (after.ip, after.user_agent, after.user_id) == ("198.51.100.1", "New", None)
        assert after.created_at == loaded.created_at
        # Without a loaded record every field is written, as before.
        store.save(key, dataclasses.replace(loaded, data={"n": 4}), changes=Changes(set={"n": 4}))
        after = store.load(key)
        assert after is not None
        assert (after.ip, after.user_agent, after.user_id) == (loaded.ip, loaded.user_agent, "7")

    def test_async_twins_under_asyncio_run(self, store: RedisStore) -> None:
        async def scenario() -> int:
            key = new_key()
            saved = await store.asave(
                key, make_record(data={"n": 1}, user_id="5"), must_create=True
            )
            other = make_record(data={"n": 1, "x": 1}, version=saved.version, user_id="5")
            await store.asave(key, other, changes=Changes(set={"x": 1}))
            merged = await store.asave(
                key,
                make_record(data={"n": 1, "y": 2}, version=saved.version, user_id="5"),
                changes=Changes(set={"y": 2}),
            )
            assert merged.data == {"n": 1, "x": 1, "y": 2}
            assert await store.acount(user_id="5") == 1
            assert [k for k, _ in await store.alist(user_id="5")] == [key]
            deleted = await store.adelete_for_user("5")
            await store.aclose()
            return deleted

        # Two event loops in a row: async pools are kept per loop.
        assert asyncio.run(scenario()) == 1
        assert asyncio.run(scenario()) == 1

    @pytest.mark.parametrize(
        ("newer", "delta"),
        [(5, 2), (1.5, 1), (2, 0.25), (1.0, 1), ("text", 3), (True, 1), (None, 2.5), (0.1, 0.2)],
    )
    def test_merged_increments_match_changes_apply(
        self, store: RedisStore, newer: Any, delta: int | float
    ) -> None:
        key, base = self.create(store, data={"n": 0, "other": 1})
        store.save(
            key,
            make_record(data={"n": newer, "other": 1}, version=base.version),
            changes=Changes(set={"n": newer}),
        )
        changes = Changes(increments={"n": delta})
        merged = store.save(
            key, make_record(data={"n": delta, "other": 1}, version=base.version), changes=changes
        )
        expected = changes.apply({"n": newer, "other": 1})
        loaded = store.load(key)
        assert loaded is not None
        for got in (merged.data, loaded.data):
            assert got == expected and type(got["n"]) is type(expected["n"]), (got, expected)

    def test_iter_all_walks_past_stale_entries(self, store: RedisStore) -> None:
        now = timezone.now()
        live = [self.create(store, last_seen=now - timedelta(seconds=i))[0] for i in range(7)]
        for _ in range(3):
            self.create(store, expires_at=now - timedelta(seconds=1))
        assert [k for k, _ in store.iter_all(batch_size=2)] == live
        assert store.count() == 7

    def test_list_drops_index_entries_without_a_session(self, store: RedisStore) -> None:
        key, _ = self.create(store)
        ghost = new_key()
        far = str(int((timezone.now() + timedelta(hours=1)).timestamp() * 1_000_000))
        raw = redis_client_of(store)
        base = store.shards.base_of(ghost)
        raw.zadd(base + "exp", {ghost: far})
        raw.zadd(base + "seen", {ghost: "-" + far})
        assert store.count() == 2  # until something meets it
        assert [k for k, _ in store.list()] == [key]
        assert store.count() == 1

    def test_scripts_are_reloaded_after_script_flush(self, store: RedisStore, setup: Setup) -> None:
        keys = [self.create(store, user_id="f")[0] for _ in range(6)]
        with setup.clients()[0] as conn:  # on a Cluster: one node forgets, the others not
            conn.script_flush()
        assert store.delete_for_user("f") == 6
        assert all(store.load(k) is None for k in keys)
        for conn in setup.clients():
            with conn:
                conn.script_flush()
        key, _ = self.create(store, data={"a": 1})
        assert store.touch(key, timezone.now() + timedelta(hours=1), timezone.now())

        async def after_flush() -> bool:
            for conn in setup.clients():
                with conn:
                    conn.script_flush()
            touched = await store.atouch(key, timezone.now() + timedelta(hours=2), timezone.now())
            await store.aclose()
            return touched

        assert asyncio.run(after_flush())

    def test_user_index_follows_a_user_change(self, store: RedisStore) -> None:
        key, saved = self.create(store, user_id="1")
        saved.user_id = "2"
        store.save(key, saved, changes=Changes())
        assert store.count(user_id="1") == 0
        assert store.count(user_id="2") == 1
        assert store.delete_for_user("1") == 0
        assert store.load(key) is not None
        assert store.delete_for_user("2") == 1

    # --- the who- and per-address indexes --------------------------------------------

    def older_layout(self, store: RedisStore, **fields: Any) -> str:
        """A session as versions before the who- and per-address indexes wrote it: the
        hash, and entries in the exp and seen sets only."""
        key = new_key()
        record = make_record(**fields)
        now_us = int(timezone.now().timestamp() * 1_000_000)
        raw = redis_client_of(store)
        values = {"v": 1, "e": now_us + 3_600_000_000, "c": now_us, "l": now_us, "d:views": "1"}
        for name, value in (("u", record.user_id), ("ip", record.ip)):
            if value is not None:
                values[name] = value
        raw.hset(store.session_key(key), mapping=values)
        raw.pexpireat(store.session_key(key), now_us // 1000 + 3_600_000)
        raw.zadd(store.exp_index, {key: now_us + 3_600_000_000})
        raw.zadd(store.seen_index, {key: -now_us})
        return key

    def test_sessions_of_the_older_layout_are_placed_at_their_next_touch_or_save(
        self, store: RedisStore
    ) -> None:
        touched = self.older_layout(store, user_id="4", ip="192.0.2.44")
        saved = self.older_layout(store, ip="192.0.2.45")
        assert {k for k, _ in store.list()} == {touched, saved}  # listed as before
        assert store.list(signed_in=True) == [] and store.list(ip="192.0.2.0/24") == []
        later = timezone.now() + timedelta(seconds=1)
        assert store.touch(touched, later + timedelta(hours=1), later)
        assert [k for k, _ in store.list(signed_in=True)] == [touched]
        assert [k for k, _ in store.list(ip="192.0.2.44")] == [touched]
        record = store.load(saved)
        assert record is not None
        store.save(saved, record, changes=Changes())
        assert [k for k, _ in store.list(signed_in=False)] == [saved]
        assert [k for k, _ in store.list(ip="192.0.2.0/24")] == [touched, saved]
        assert store.delete_all() == 2
        assert index_keys(store) == []

    def test_indexes_are_left_empty_when_every_session_is_gone(self, store: RedisStore) -> None:
        past = timezone.now() - timedelta(seconds=1)
        expired = [self.create(store, ip="10.0.0.1", expires_at=past)[0] for _ in range(3)]
        key, saved = self.create(store, user_id="8", ip="10.0.0.2")
        other, _ = self.create(store, ip="2001:db8::7")
        saved.ip = "10.0.0.3"  # the old address's sets go when it has no session left
        saved = store.save(key, saved, changes=Changes())
        names = index_keys(store)
        assert f"{store.shards.base_of(key)}ip:4{bytes([10, 0, 0, 3]).hex()}:i" in names
        assert not any(bytes([10, 0, 0, 2]).hex() in name for name in names)
        batches = list(store.purge_expired(batch_size=2))  # per shard, at most 2 each
        assert sum(batches) == 3 and all(1 <= n <= 2 for n in batches), batches
        assert all(store.load(k) is None for k in expired)
        store.delete(other)
        store.delete_for_user("8")
        assert index_keys(store) == []

    def test_a_walk_goes_on_over_several_calls(
        self, store: RedisStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        items = self.fill(store)
        monkeypatch.setattr("django_sessionkit.stores.redis.listing.WALK_LIMIT", 2)
        for filters in FILTERS:
            if "ip" in filters:
                assert walk(store, 1, **filters) == reference(items, **filters), filters


class TestRedisStandalone(RedisContractExtras):
    @pytest.fixture
    def store(self, redis_store: RedisStore) -> RedisStore:
        return redis_store

    @pytest.fixture
    def setup(self, redis_standalone: Standalone) -> Standalone:
        return redis_standalone


class TestRedisCluster(RedisContractExtras):
    @pytest.fixture
    def store(self, cluster_store: RedisStore) -> RedisStore:
        return cluster_store

    @pytest.fixture
    def setup(self, redis_cluster: Cluster) -> Cluster:
        return redis_cluster


class TestRedisClusterOneShard(RedisContractExtras):
    """The contract with INDEX_SHARDS = 1: the single {idx} index stays a supported layout."""

    @pytest.fixture
    def store(self, cluster_store_one_shard: RedisStore) -> RedisStore:
        return cluster_store_one_shard

    @pytest.fixture
    def setup(self, redis_cluster: Cluster) -> Cluster:
        return redis_cluster


class TestRedisSentinel(RedisContractExtras):
    @pytest.fixture
    def store(self, sentinel_store: RedisStore) -> RedisStore:
        return sentinel_store

    @pytest.fixture
    def setup(self, redis_sentinel: SentinelSetup) -> SentinelSetup:
        return redis_sentinel

    def test_failover_in_the_middle_keeps_every_session(
        self, store: RedisStore, setup: SentinelSetup
    ) -> None:
        sessions = {}
        for i in range(20):
            key, saved = self.create(store, data={"n": i}, user_id=str(i % 3))
            sessions[key] = saved
        with redis_client_of(store) as master:  # every write on the replica before failing over
            assert master.execute_command("WAIT", 1, 5000) >= 1
        old_master = setup.master_port()
        new_master = setup.failover()
        assert new_master != old_master
        for key, saved in sessions.items():
            loaded = store.load(key)
            assert loaded is not None and loaded.data == saved.data
        key, saved = next(iter(sessions.items()))
        saved.data = {**saved.data, "after": True}
        assert store.save(key, saved, changes=Changes(set={"after": True})).version == 2
        assert store.touch(key, timezone.now() + timedelta(hours=2), timezone.now())
        new_key_, _ = self.create(store, data={"new": 1})
        assert store.count() == 21
        assert store.delete_for_user("0") == 7

        async def after_failover() -> None:
            loaded = await store.aload(new_key_)
            assert loaded is not None and loaded.data == {"new": 1}
            await store.aclose()

        asyncio.run(after_failover())


class TestValkey(RedisContractExtras):
    @pytest.fixture
    def store(self, valkey_store: RedisStore) -> RedisStore:
        return valkey_store

    @pytest.fixture
    def setup(self, valkey_standalone: Standalone) -> Standalone:
        return valkey_standalone

    def test_it_is_valkey(self, setup: Standalone) -> None:
        with setup.server.client() as conn:
            assert conn.info("server").get("server_name") == "valkey"


@pytest.mark.slow
class TestValkeyCluster(StoreContract):
    @pytest.fixture
    def store(self, valkey_cluster_store: RedisStore) -> RedisStore:
        return valkey_cluster_store


# --- round trips ---------------------------------------------------------------------


def command_calls(setup: Setup) -> Counter[str]:
    """Commands each server ran so far, summed over the data nodes (INFO itself excluded)."""
    total: Counter[str] = Counter()
    for conn in setup.clients():
        with conn:
            for name, stats in conn.info("commandstats").items():
                if name not in ("cmdstat_info", "cmdstat_hello", "cmdstat_client|setinfo"):
                    total[name.removeprefix("cmdstat_")] += int(stats["calls"])
    return total


class RoundTrips:
    """Counts the writes on each socket: one per node per round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sends: Counter[int] = Counter()
        self.log: list[tuple[int, str]] = []
        original = redis.connection.AbstractConnection.send_packed_command
        trips = self

        def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            trips.sends[int(getattr(conn, "port", 0))] += 1
            trips.log.append((int(getattr(conn, "port", 0)), repr(command)[:120]))
            original(conn, command, check_health)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def measure(self, setup: Setup, action: Any) -> tuple[Counter[str], Counter[int]]:
        self.sends.clear()
        before = command_calls(setup)
        self.sends.clear()
        self.log.clear()
        action()
        sends = Counter(self.sends)
        self.sends.clear()
        after = command_calls(setup)
        after.subtract(before)
        assert "command|getkeys" not in +after, "the client asked a node where keys are"
        return +after, sends


ROUND_TRIP_SETUPS = {
    "standalone": ("redis_standalone", 16),
    "sentinel": ("redis_sentinel", 16),
    "cluster": ("redis_cluster", 16),
    "cluster-one-shard": ("redis_cluster", 1),
    "valkey-cluster": ("valkey_cluster", 16),
}


@pytest.mark.parametrize("mode", list(ROUND_TRIP_SETUPS))
def test_round_trips_per_operation(
    mode: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture, shards = ROUND_TRIP_SETUPS[mode]
    setup: Setup = request.getfixturevalue(fixture)
    store = make_store(setup, INDEX_SHARDS=shards)
    mode = "standalone" if fixture in ("redis_standalone", "redis_sentinel") else "cluster"
    try:
        for i in range(12):  # open a connection to every node and load the scripts first
            warm = new_key()
            store.save(warm, make_record(user_id=str(i)), must_create=True)
            store.touch(warm, timezone.now() + timedelta(hours=1), timezone.now())
            store.load(warm)
            store.delete(warm)  # loads the unindex script too (else: NOSCRIPT, SCRIPT LOAD)
        trips = RoundTrips(monkeypatch)
        key = new_key()
        record = make_record(data={"a": 1}, user_id="1")

        one_trip = 1 if mode == "standalone" else len(setup.clients())
        # On a Cluster the index side (one slot) runs its own script in the same pipeline.
        scripts = 1 if mode == "standalone" else 2

        def check(sends: Counter[int]) -> None:
            # One write per node (a Cluster pipeline goes to its nodes in parallel).
            assert max(sends.values()) == 1 and sum(sends.values()) <= one_trip, (sends, trips.log)

        created: dict[str, Any] = {}
        commands, sends = trips.measure(
            setup, lambda: created.update(r=store.save(key, record, must_create=True))
        )
        check(sends)
        # commandstats also counts the calls a script makes: each script ran once.
        assert commands["evalsha"] == scripts, commands
        if mode == "standalone":
            assert sum(sends.values()) == 1

        commands, sends = trips.measure(setup, lambda: store.load(key))
        assert commands == Counter({"hgetall": 1}) and sum(sends.values()) == 1, commands

        saved = created["r"]
        saved.data = {"a": 2}
        commands, sends = trips.measure(
            setup, lambda: store.save(key, saved, changes=Changes(set={"a": 2}))
        )
        check(sends)
        assert commands["evalsha"] == scripts, commands

        commands, sends = trips.measure(
            setup, lambda: store.touch(key, timezone.now() + timedelta(hours=2), timezone.now())
        )
        check(sends)
        assert commands["evalsha"] == scripts and "hset" in commands, commands

        commands, sends = trips.measure(setup, lambda: store.delete(key))
        check(sends)
        bases = store._bases()  # every index shard, in one pipelined round trip
        assert len(bases) >= store.shards.count
        commands, sends = trips.measure(setup, store.count)
        assert commands == Counter({"zcount": len(bases)}), commands
        check(sends)
        if mode == "standalone":
            assert sum(sends.values()) == 1
    finally:
        store.close()
        delete_prefix(setup, store.prefix)


# --- a server stopped mid-test -----------------------------------------------------------


@pytest.fixture
def persistent_store(redis_persistent: Standalone) -> Iterator[RedisStore]:
    store = make_store(redis_persistent, **FAST_FAILURE)
    yield store
    store.close()
    if redis_persistent.server.process is None:
        redis_persistent.server.start()
    delete_prefix(redis_persistent, store.prefix)


def test_a_stopped_server_raises_store_unavailable_and_nothing_is_lost(
    persistent_store: RedisStore, redis_persistent: Standalone
) -> None:
    store = persistent_store
    keys = {}
    for i in range(10):
        key = new_key()
        keys[key] = store.save(key, make_record(data={"n": i}, user_id="u"), must_create=True)
    redis_persistent.server.stop()

    some_key, some = next(iter(keys.items()))
    with pytest.raises(StoreUnavailable) as caught:
        store.load(some_key)
    assert "127.0.0.1" in str(caught.value) and store.prefix in str(caught.value)
    with pytest.raises(StoreUnavailable):
        store.save(some_key, some, changes=Changes(set={"lost": 1}))
    with pytest.raises(StoreUnavailable):
        store.touch(some_key, timezone.now() + timedelta(hours=1), timezone.now())
    with pytest.raises(StoreUnavailable):
        store.count()

    async def async_down() -> None:
        with pytest.raises(StoreUnavailable):
            await store.aload(some_key)
        with pytest.raises(StoreUnavailable):
            await store.asave(new_key(), make_record(), must_create=True)

    asyncio.run(async_down())

    redis_persistent.server.start()
    time.sleep(store.breaker.cool_down)  # the circuit the outage opened lets a probe through
    for key, saved in keys.items():
        loaded = store.load(key)
        assert loaded is not None and loaded.data == saved.data
    assert store.count() == 10
    assert store.count(user_id="u") == 10
    some.data = {**some.data, "after": 1}
    assert store.save(some_key, some, changes=Changes(set={"after": 1})).version == 2


def test_bounded_connections_leave_one_for_the_clients_other_uses(
    redis_standalone: Standalone,
) -> None:
    """The store's round trips take connections outside redis-py's per-command path (the
    Lane). With MAX_CONNECTIONS = 1 they must give the one connection back after each
    round trip: purge_expired's SCAN and a script load go through the client itself."""
    store = make_store(redis_standalone, MAX_CONNECTIONS=1)
    try:
        key = new_key()
        store.save(key, make_record(data={"n": 1}, user_id="u"), must_create=True)
        redis_client_of(store).script_flush()  # the next save loads its script again
        loaded = store.load(key)
        assert loaded is not None
        assert store.save(key, loaded, changes=Changes(set={"n": 2})).version == 2
        assert list(store.purge_expired()) is not None  # SCAN over the user sets
        assert store.load(key).data == {"n": 2}  # type: ignore[union-attr]
        from django_sessionkit.stores.redis import connection

        pool = connection.sync_client(store.config).connection_pool
        assert len(pool._in_use_connections) == 0  # nothing held between round trips
    finally:
        store.close()
        delete_prefix(redis_standalone, store.prefix)


def test_unix_socket_location(redis_standalone: Standalone) -> None:
    store = RedisStore(redis_standalone.unix_url, {"PREFIX": "sk-test-unix:"})
    try:
        key = new_key()
        store.save(key, make_record(data={"via": "unix"}), must_create=True)
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"via": "unix"}
        assert "unix://" in store.describe()
    finally:
        store.close()
        delete_prefix(redis_standalone, "sk-test-unix:")


def test_tls_location_with_options(redis_tls: Standalone) -> None:
    ca = str(redis_tls.server.directory / "ca.pem")
    url = f"rediss://127.0.0.1:{redis_tls.server.port}/0"
    options = {"PREFIX": "sk-test-tls:", "SSL_CA_CERTS": ca, "SSL_CERT_REQS": "required"}
    assert RedisStore.check(url, options) == []
    store = RedisStore(url, options)
    try:
        key = new_key()
        store.save(key, make_record(data={"via": "tls"}), must_create=True)
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"via": "tls"}

        async def over_tls() -> bool:
            found = await store.aexists(key)
            await store.aclose()
            return found

        assert asyncio.run(over_tls())
    finally:
        store.close()
    untrusted = RedisStore(url, {**FAST_FAILURE, "PREFIX": "sk-test-tls:"})
    with pytest.raises(StoreUnavailable):  # the system CAs do not know our CA
        untrusted.load(new_key())
    untrusted.close()


def test_an_unreachable_store_is_unavailable_not_empty() -> None:
    store = RedisStore("redis://127.0.0.1:1/0", FAST_FAILURE)
    with pytest.raises(StoreUnavailable) as caught:
        store.load(new_key())
    assert "redis://127.0.0.1:1/0" in str(caught.value)
    store.close()


# --- configuration: check() and describe() ---------------------------------------------


@pytest.mark.parametrize(
    ("location", "options", "fragment"),
    [
        ("http://x/0", {}, "has scheme 'http'"),
        (None, {}, "LOCATION is required"),
        ("redis://x/0", {"PREFX": "a"}, "'PREFX'] is not a RedisStore option"),
        ("redis://x/0", {"MODE": "ring"}, "use one of standalone, sentinel, cluster"),
        ("redis://x/0", {"SOCKET_TIMEOUT": "5"}, "'SOCKET_TIMEOUT'] must be int or float"),
        ("redis://x/0", {"SOCKET_TIMEOUT": -1}, "must be a number of seconds >= 0"),
        ("redis://x/0", {"SOCKET_CONNECT_TIMEOUT": 0}, "must be > 0"),
        ("redis://x/0", {"RETRY_ATTEMPTS": 100}, "between 0 and 20"),
        ("redis://x/0", {"RETRY_ATTEMPTS": True}, "must be int, not bool"),
        ("redis://x/0", {"MAX_CONNECTIONS": 0}, "at least 1"),
        ("redis://x/0", {"SSL_CA_CERTS": "/ca.pem"}, "use a rediss:// LOCATION"),
        ("rediss://x/0", {"SSL_CERT_REQS": "maybe"}, "use one of required, optional, none"),
        ("redis://x/0", {"SENTINELS": "x:1"}, "must be list or tuple"),
        (None, {"MODE": "sentinel"}, "needs OPTIONS['SENTINELS']"),
        (None, {"SENTINELS": [("h", 26379)]}, "needs the master's name"),
        (None, {"SENTINELS": [("h", "port")], "SERVICE_NAME": "m"}, "is not (host, port)"),
        (["redis://a:1/3"], {}, "only database 0"),
        (["unix:///tmp/r.sock"], {}, "reached over TCP"),
        (["a:1", "b:2"], {"PREFIX": "{app}:"}, "must not contain '{'"),
        (["a:1"], {"SERVICE_NAME": "m"}, "only applies to MODE 'sentinel'"),
        (["a:1"], {"CONNECTION_POOL_KWARGS": []}, "must be dict"),
    ],
)
def test_check_reports_bad_configuration(
    location: Any, options: dict[str, Any], fragment: str
) -> None:
    problems = RedisStore.check(location, options)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("location", "options"),
    [
        ("redis://127.0.0.1:6379/0", {}),
        ("rediss://:secret@cache.example:6380/1", {"SSL_CERT_REQS": "required"}),
        ("unix:///run/redis/redis.sock?db=2", {"PREFIX": "app:"}),
        (["127.0.0.1:7000", "redis://127.0.0.1:7001"], {}),
        ("redis://127.0.0.1:7000", {"MODE": "cluster", "RETRY_ATTEMPTS": 5}),
        (None, {"SENTINELS": [("127.0.0.1", 26380), "10.0.0.2:26379"], "SERVICE_NAME": "m"}),
        (
            "redis://:pw@mymaster/3",
            {"SENTINELS": ["127.0.0.1:26380"], "SENTINEL_KWARGS": {"password": "s"}},
        ),
    ],
)
def test_check_accepts_good_configuration(location: Any, options: dict[str, Any]) -> None:
    assert RedisStore.check(location, options) == []


def test_system_checks_report_redis_options() -> None:
    from django_sessionkit.checks import configuration_errors

    store = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": "http://cache.example/0",
        "OPTIONS": {"SOCKET_TIMEOUT": -1, "RETRY": 3},
    }
    with override_settings(SESSIONKIT={"STORE": store}):
        errors = configuration_errors()
    text = "\n".join(errors)
    assert "has scheme 'http'" in text
    assert "'SOCKET_TIMEOUT'] must be a number of seconds >= 0" in text
    assert "'RETRY'] is not a RedisStore option" in text
    good = {**store, "LOCATION": "redis://cache.example/0", "OPTIONS": {"SOCKET_TIMEOUT": 1}}
    with override_settings(SESSIONKIT={"STORE": good}):
        assert configuration_errors() == []


def test_describe_hides_passwords() -> None:
    store = RedisStore("redis://user:hunter2@cache.example:6379/0", {})
    assert "hunter2" not in store.describe()
    assert "user:***@cache.example:6379" in store.describe()
    cluster = RedisStore(["redis://:hunter2@a:1", "b:2"], {})
    assert "hunter2" not in cluster.describe()
    sentinel = RedisStore("redis://:hunter2@mymaster/0", {"SENTINELS": ["h:26379"]})
    assert "hunter2" not in sentinel.describe() and "mymaster" in sentinel.describe()


# --- helpers -----------------------------------------------------------------------------


def redis_client_of(store: RedisStore) -> Any:
    """A plain sync client on the store's own pools (the master / the cluster)."""
    from django_sessionkit.stores.redis import connection as redis_client

    return redis_client.build_sync(store.config)


def index_keys(store: RedisStore) -> list[str]:
    """The keys of the store's indexes (``P{idx:…}:…``, every shard) that hold anything."""
    raw = redis_client_of(store)
    pattern = store.prefix + "{idx*"
    return sorted({_text(k) for k in raw.scan_iter(match=pattern, count=1000)})


def dump_prefix(setup: Setup, prefix: str) -> list[str]:
    """Every key under ``prefix`` on every node, and every value, as text."""
    texts: list[str] = []
    for conn in setup.clients():
        with conn:
            for raw_key in conn.scan_iter(match=prefix + "*"):
                key = _text(raw_key)
                texts.append(key)
                kind = _text(conn.type(key))
                if kind == "hash":
                    for field, value in conn.hgetall(key).items():
                        texts += [_text(field), _text(value)]
                elif kind == "zset":
                    texts += [_text(m) for m in conn.zrange(key, 0, -1)]
                elif kind == "set":
                    texts += [_text(m) for m in conn.smembers(key)]
                else:
                    texts.append(repr(conn.dump(key)))
    return texts


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
