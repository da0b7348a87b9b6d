"""The contract every store must pass.

Subclass :class:`StoreContract` once per store (and per mode of a store) and
provide a ``store`` fixture returning a fresh, empty store. Keys here stand in
for what the engine passes: SHA-256 hex digests of random ids.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from django_sessionkit.stores.base import (
    Changes,
    CreateError,
    SessionRecord,
    Store,
    UpdateError,
)


def new_key() -> str:
    return hashlib.sha256(secrets.token_urlsafe(32).encode()).hexdigest()


def make_record(data: dict[str, object] | None = None, **fields: object) -> SessionRecord:
    now = timezone.now()
    values: dict[str, object] = {
        "data": {"views": 1} if data is None else data,
        "expires_at": now + timedelta(hours=1),
        "created_at": now,
        "last_seen": now,
        "user_id": None,
        "ip": "192.0.2.1",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    }
    values.update(fields)
    return SessionRecord(**values)  # type: ignore[arg-type]


def close_to(a: datetime, b: datetime, seconds: float = 1.0) -> bool:
    return abs((a - b).total_seconds()) <= seconds


class StoreContract:
    """Tests that hold every store to the same behaviour."""

    def create(
        self, store: Store, key: str | None = None, **kwargs: object
    ) -> tuple[str, SessionRecord]:
        key = key or new_key()
        return key, store.save(key, make_record(**kwargs), must_create=True)  # type: ignore[arg-type]

    # --- load / create ------------------------------------------------------

    def test_load_missing_is_none(self, store: Store) -> None:
        assert store.load(new_key()) is None
        assert store.exists(new_key()) is False

    def test_create_then_load_round_trips_data_and_metadata(self, store: Store) -> None:
        data = {"views": 3, "nested": {"list": [1, "two", None]}, "text": "héllo ✓"}
        key, saved = self.create(store, data=data, user_id="42")
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == data
        assert loaded.user_id == "42"
        assert loaded.ip == "192.0.2.1"
        assert loaded.user_agent.startswith("Mozilla/5.0")
        assert close_to(loaded.expires_at, saved.expires_at)
        assert close_to(loaded.created_at, saved.created_at)
        assert loaded.version == saved.version >= 1
        assert store.exists(key) is True

    def test_create_on_existing_key_fails_and_keeps_the_original(self, store: Store) -> None:
        key, _ = self.create(store, data={"owner": "first"})
        with pytest.raises(CreateError):
            store.save(key, make_record(data={"owner": "second"}), must_create=True)
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"owner": "first"}

    # --- update -------------------------------------------------------------

    def test_update_writes_changes_and_bumps_version(self, store: Store) -> None:
        key, saved = self.create(store, data={"a": 1})
        saved.data = {"a": 2, "b": 3}
        updated = store.save(key, saved, changes=Changes(set={"a": 2, "b": 3}))
        assert updated.version == saved.version + 1
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"a": 2, "b": 3}
        assert loaded.version == updated.version

    def test_update_of_a_deleted_session_fails_and_does_not_recreate_it(self, store: Store) -> None:
        key, saved = self.create(store)
        store.delete(key)
        saved.data = {"views": 2}
        with pytest.raises(UpdateError):
            store.save(key, saved, changes=Changes(set={"views": 2}))
        with pytest.raises(UpdateError):
            store.save(key, saved)  # whole-data replace too
        assert store.load(key) is None

    def test_concurrent_saves_of_different_keys_both_survive(self, store: Store) -> None:
        key, base = self.create(store, data={"views": 1})
        first = make_record(data={"views": 1, "cart": ["apple"]}, version=base.version)
        second = make_record(data={"views": 1, "theme": "dark"}, version=base.version)
        store.save(key, first, changes=Changes(set={"cart": ["apple"]}))
        merged = store.save(key, second, changes=Changes(set={"theme": "dark"}))
        expected = {"views": 1, "cart": ["apple"], "theme": "dark"}
        assert merged.data == expected
        loaded = store.load(key)
        assert loaded is not None and loaded.data == expected
        assert loaded.version == base.version + 2

    def test_concurrent_saves_of_the_same_key_the_later_wins(self, store: Store) -> None:
        key, base = self.create(store, data={"theme": "light", "keep": 1})
        store.save(
            key,
            make_record(data={"theme": "dark", "keep": 1}, version=base.version),
            changes=Changes(set={"theme": "dark"}),
        )
        store.save(
            key,
            make_record(data={"theme": "blue", "keep": 1}, version=base.version),
            changes=Changes(set={"theme": "blue"}),
        )
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"theme": "blue", "keep": 1}

    def test_a_concurrent_removal_is_merged(self, store: Store) -> None:
        key, base = self.create(store, data={"a": 1, "b": 2})
        store.save(
            key,
            make_record(data={"a": 1, "b": 2, "c": 3}, version=base.version),
            changes=Changes(set={"c": 3}),
        )
        store.save(
            key, make_record(data={"b": 2}, version=base.version), changes=Changes(removed={"a"})
        )
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"b": 2, "c": 3}

    def test_concurrent_increments_add_up(self, store: Store) -> None:
        key, base = self.create(store, data={"views": 10})
        store.save(
            key,
            make_record(data={"views": 11}, version=base.version),
            changes=Changes(increments={"views": 1}),
        )
        merged = store.save(
            key,
            make_record(data={"views": 13}, version=base.version),
            changes=Changes(increments={"views": 3}),
        )
        assert merged.data == {"views": 14}
        loaded = store.load(key)
        assert loaded is not None and loaded.data == {"views": 14}

    def test_update_carries_metadata(self, store: Store) -> None:
        key, saved = self.create(store)
        later = timezone.now() + timedelta(hours=5)
        saved.user_id, saved.ip, saved.expires_at = "7", "2001:db8::1", later
        store.save(key, saved, changes=Changes())
        loaded = store.load(key)
        assert loaded is not None
        assert (loaded.user_id, loaded.ip) == ("7", "2001:db8::1")
        assert close_to(loaded.expires_at, later)

    # --- touch / expiry -----------------------------------------------------

    def test_touch_moves_expiry_and_last_seen_but_not_data(self, store: Store) -> None:
        key, saved = self.create(store, data={"views": 5})
        later = timezone.now() + timedelta(days=2)
        seen = timezone.now() + timedelta(seconds=30)
        assert store.touch(key, later, seen) is True
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == {"views": 5}
        assert loaded.version == saved.version
        assert close_to(loaded.expires_at, later)
        assert close_to(loaded.last_seen, seen)

    def test_touch_of_a_missing_session_does_nothing(self, store: Store) -> None:
        key = new_key()
        assert store.touch(key, timezone.now() + timedelta(hours=1), timezone.now()) is False
        assert store.load(key) is None

    def test_an_expired_session_never_loads_and_touch_does_not_revive_it(
        self, store: Store
    ) -> None:
        key, _ = self.create(store, expires_at=timezone.now() - timedelta(seconds=1))
        assert store.load(key) is None
        assert store.exists(key) is False
        assert store.touch(key, timezone.now() + timedelta(hours=1), timezone.now()) is False
        assert store.load(key) is None

    # --- delete / listing ---------------------------------------------------

    def test_delete(self, store: Store) -> None:
        key, _ = self.create(store)
        store.delete(key)
        assert store.load(key) is None
        store.delete(key)  # deleting twice is fine

    def test_count_and_list_live_sessions_newest_first(self, store: Store) -> None:
        now = timezone.now()
        keys = []
        for i in range(5):
            key, _ = self.create(
                store, last_seen=now - timedelta(minutes=i), user_id="1" if i % 2 else "2"
            )
            keys.append(key)
        self.create(store, expires_at=now - timedelta(seconds=5))  # expired: never listed
        assert store.count() == 5
        assert store.count(user_id="1") == 2
        first_page = store.list(limit=3)
        second_page = store.list(offset=3, limit=3)
        assert [k for k, _ in first_page + second_page] == keys
        assert [k for k, _ in store.list(user_id="1")] == [keys[1], keys[3]]
        assert [k for k, _ in store.iter_all(batch_size=2)] == keys

    def test_delete_for_user_keeps_the_named_session(self, store: Store) -> None:
        mine = [self.create(store, user_id="9")[0] for _ in range(3)]
        theirs, _ = self.create(store, user_id="10")
        assert store.delete_for_user("9", keep=mine[0]) == 2
        assert store.load(mine[0]) is not None
        assert store.load(mine[1]) is None and store.load(mine[2]) is None
        assert store.load(theirs) is not None
        assert store.delete_for_user("9") == 1
        assert store.count(user_id="9") == 0

    def test_find_by_prefix(self, store: Store) -> None:
        key, _ = self.create(store)
        self.create(store)
        gone, _ = self.create(store, expires_at=timezone.now() - timedelta(seconds=1))
        assert [k for k, _ in store.find_by_prefix(key[:12])] == [key]
        assert store.find_by_prefix(gone[:12]) == []
        assert len(store.find_by_prefix("", limit=5)) == 2
        estimate = store.estimate_count()
        assert estimate is None or estimate >= 0

    def test_purge_expired_removes_only_expired_sessions_in_batches(self, store: Store) -> None:
        past = timezone.now() - timedelta(minutes=1)
        for _ in range(5):
            self.create(store, expires_at=past, user_id="3")
        live, _ = self.create(store, user_id="3")
        batches = list(store.purge_expired(batch_size=2))
        assert all(n <= 2 for n in batches)
        assert store.load(live) is not None
        assert store.count() == 1
        assert store.count(user_id="3") == 1
        assert list(store.purge_expired(batch_size=2)) in ([], [0])

    # --- async twins --------------------------------------------------------

    def test_async_twins(self, store: Store) -> None:
        async def scenario() -> None:
            key = new_key()
            saved = await store.asave(key, make_record(data={"n": 1}), must_create=True)
            loaded = await store.aload(key)
            assert loaded is not None and loaded.data == {"n": 1}
            saved.data = {"n": 2}
            await store.asave(key, saved, changes=Changes(set={"n": 2}))
            assert await store.aexists(key) is True
            assert await store.atouch(key, timezone.now() + timedelta(hours=3), timezone.now())
            assert await store.acount() == 1
            assert [k for k, _ in await store.alist()] == [key]
            await store.adelete(key)
            assert await store.aload(key) is None
            assert await store.adelete_for_user("nobody") == 0

        # async_to_sync, as Django's own async tests do: the ORM's thread-sensitive calls
        # then run on this thread and see the test's transaction.
        async_to_sync(scenario)()
