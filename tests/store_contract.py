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
    Cursor,
    SessionRecord,
    Store,
    UpdateError,
    as_network,
    matches,
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


#: Addresses the listing tests spread their sessions over (None: no address known).
ADDRESSES = [
    "192.0.2.7",
    "192.0.2.9",
    "198.51.100.20",
    "10.1.2.3",
    "10.1.200.4",
    "10.17.0.1",
    "2001:db8::1",
    "2001:db8:5::9",
    "2001:db9::1",
    None,
]

#: Filter combinations the listing must answer, each checked against a plain reference.
FILTERS: list[dict[str, object]] = [
    {},
    {"signed_in": True},
    {"signed_in": False},
    {"ip": "192.0.2.7"},
    {"ip": "192.0.2.0/24"},
    {"ip": "10.0.0.0/8"},
    {"ip": "10.0.0.0/12"},
    {"ip": "10.1.0.0/16"},
    {"ip": "203.0.113.0/24"},
    {"ip": "2001:db8::1"},
    {"ip": "2001:db8::/32"},
    {"ip": "10.0.0.0/8", "signed_in": True},
    {"ip": "192.0.2.7", "signed_in": False},
    {"user_id": "1", "ip": "10.0.0.0/8"},
    {"user_id": "2", "signed_in": False},
    {"user_id": "3", "signed_in": True},
]


def walk(store: Store, limit: int, **filters: object) -> list[str]:
    """Every key a filter lists, page by page with cursors (each page at most ``limit``)."""
    keys: list[str] = []
    after = None
    while True:
        page = store.list(after=after, limit=limit, **filters)  # type: ignore[arg-type]
        assert len(page) <= limit
        keys += [key for key, _ in page]
        if len(page) < limit:
            return keys
        after = Cursor.of(page[-1])


def reference(items: list[tuple[str, SessionRecord]], **filters: object) -> list[str]:
    """What ``Store.list`` must return for ``filters``, computed the plain way."""
    ip = filters.get("ip")
    network = None if ip is None else as_network(str(ip))
    kept = [
        (key, record)
        for key, record in items
        if matches(
            record,
            user_id=filters.get("user_id"),  # type: ignore[arg-type]
            signed_in=filters.get("signed_in"),  # type: ignore[arg-type]
            network=network,
        )
    ]
    kept.sort(key=lambda item: item[0])
    kept.sort(key=lambda item: item[1].last_seen, reverse=True)
    return [key for key, _ in kept]


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

    def test_four_byte_characters_round_trip(self, store: Store) -> None:
        # Outside Unicode's first plane: MySQL's 3-byte "utf8" (utf8mb3) cannot hold them.
        data = {"name": "Zoë 🎉", "\U0001d4b3": ["🦊"]}
        key, _ = self.create(store, data=data, user_agent="Mozilla/5.0 🦊")
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == data and loaded.user_agent == "Mozilla/5.0 🦊"

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
        second_page = store.list(after=Cursor.of(first_page[-1]), limit=3)
        assert [k for k, _ in first_page + second_page] == keys
        assert [k for k, _ in store.list(user_id="1")] == [keys[1], keys[3]]
        assert [k for k, _ in store.iter_all(batch_size=2)] == keys

    # --- listing: filters and cursor paging -----------------------------------

    def fill(self, store: Store, n: int = 24) -> list[tuple[str, SessionRecord]]:
        """``n`` live sessions over :data:`ADDRESSES`, signed in or not, three per moment
        (ties are ordered by key), and two expired ones that no listing may show."""
        base = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
        items = []
        for i in range(n):
            key, _ = self.create(
                store,
                last_seen=base + timedelta(seconds=(i // 3) * 7),
                user_id=None if i % 3 == 0 else str(i % 4),
                ip=ADDRESSES[i % len(ADDRESSES)],
            )
            loaded = store.load(key)
            assert loaded is not None
            items.append((key, loaded))
        past = timezone.now() - timedelta(seconds=1)
        self.create(store, expires_at=past, ip="10.1.2.3", user_id="1", last_seen=base)
        self.create(store, expires_at=past, ip="2001:db8::1", last_seen=base)
        return items

    def test_filters_and_cursor_paging_agree_with_a_reference(self, store: Store) -> None:
        items = self.fill(store)
        for filters in FILTERS:
            expected = reference(items, **filters)
            for limit in (1, 4, 50):
                assert walk(store, limit, **filters) == expected, (filters, limit)
        assert reference(items, ip="10.0.0.0/12") and reference(items, signed_in=False)

    def test_a_cursor_key_may_be_a_bound(self, store: Store) -> None:
        items = self.fill(store, n=9)
        keys = reference(items)
        first = store.list(limit=4)
        key, record = first[-1]
        # After every key with this prefix (what the admin passes), or before all of them.
        assert [k for k, _ in store.list(after=Cursor(record.last_seen, key[:12] + "g"))] == (
            keys[4:]
        )
        assert [k for k, _ in store.list(after=Cursor(record.last_seen, key[:12]))] == (keys[3:])
        assert store.list(after=Cursor(timezone.now() - timedelta(days=1), "")) == []

    def test_an_unknown_ip_filter_is_a_value_error(self, store: Store) -> None:
        with pytest.raises(ValueError):
            store.list(ip="not-an-address")

    def test_filtered_listings_follow_saves_and_deletes(self, store: Store) -> None:
        key, saved = self.create(store, ip="192.0.2.50")
        assert [k for k, _ in store.list(signed_in=False)] == [key]
        assert [k for k, _ in store.list(ip="192.0.2.50")] == [key]
        saved.user_id, saved.ip = "77", "198.51.100.7"  # a login from another network
        saved = store.save(key, saved, changes=Changes())
        assert store.list(signed_in=False) == []
        assert [k for k, _ in store.list(signed_in=True)] == [key]
        assert store.list(ip="192.0.2.0/24") == []
        assert [k for k, _ in store.list(ip="198.51.100.0/24", signed_in=True)] == [key]
        saved.ip = None
        store.save(key, saved, changes=Changes())
        assert store.list(ip="198.51.100.7") == []
        assert [k for k, _ in store.list(signed_in=True)] == [key]
        store.delete(key)
        assert store.list(signed_in=True) == [] and store.list() == []

    def test_touch_moves_a_session_up_in_filtered_listings(self, store: Store) -> None:
        now = timezone.now()
        older, _ = self.create(store, user_id="5", ip="10.9.9.9", last_seen=now)
        newer, _ = self.create(store, user_id="6", ip="10.9.9.9", last_seen=now)
        for filters in ({}, {"signed_in": True}, {"ip": "10.9.9.9"}, {"ip": "10.9.0.0/16"}):
            assert [k for k, _ in store.list(**filters)] == sorted([older, newer]), filters
        assert store.touch(older, now + timedelta(hours=2), now + timedelta(seconds=5))
        for filters in ({}, {"signed_in": True}, {"ip": "10.9.9.9"}, {"ip": "10.9.0.0/16"}):
            assert [k for k, _ in store.list(**filters)] == [older, newer], filters

    def test_delete_all_keeps_one_and_ends_every_other(self, store: Store) -> None:
        keys = [k for k, _ in self.fill(store, n=7)]
        keep = keys[3]
        assert store.delete_all(keep=keep) == 6
        assert [k for k, _ in store.list()] == [keep]
        assert all(store.load(k) is None for k in keys if k != keep)
        assert store.count() == 1
        later, _ = self.create(store, ip="192.0.2.7")
        assert [k for k, _ in store.list(ip="192.0.2.7")] == [later]
        assert store.delete_all() == 2
        assert store.list() == [] and store.list(signed_in=False) == []

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
            assert [k for k, _ in await store.alist(signed_in=False, ip="192.0.2.0/24")] == [key]
            assert await store.alist(signed_in=True) == []
            await store.adelete(key)
            assert await store.aload(key) is None
            assert await store.adelete_for_user("nobody") == 0
            await store.asave(new_key(), make_record(), must_create=True)
            assert await store.adelete_all() == 1

        # async_to_sync, as Django's own async tests do: the ORM's thread-sensitive calls
        # then run on this thread and see the test's transaction.
        async_to_sync(scenario)()
