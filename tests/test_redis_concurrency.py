"""Overlapping requests of one browser on RedisStore (standalone and Cluster): every write
survives, counters add up, a revoke in the middle of a burst stays revoked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from django_sessionkit import cookies
from django_sessionkit.stores import get_store
from tests.redis_fixtures import delete_prefix, new_prefix, store_config
from tests.test_concurrency import REQUESTS, THREADS, Browser, burst

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["redis_standalone", "redis_cluster"])
def redis_store_settings(request: pytest.FixtureRequest) -> Iterator[str]:
    setup = request.getfixturevalue(request.param)
    location, options = store_config(setup)
    prefix = new_prefix()
    store = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": location,
        "OPTIONS": {**options, "PREFIX": prefix},
    }
    with override_settings(SESSIONKIT={"STORE": store}):
        yield request.param
        get_store().close()
    delete_prefix(setup, prefix)


def test_every_concurrent_write_to_its_own_key_survives(
    live_server: object, redis_store_settings: str
) -> None:
    browser = Browser(live_server.url)  # type: ignore[attr-defined]
    sid = browser.start_session("/count/")
    statuses = burst(browser, [f"/set/k{i}/v{i}/" for i in range(REQUESTS)])
    assert statuses.count(200) == REQUESTS
    record = get_store().load(cookies.hash_id(sid))
    assert record is not None
    missing = [i for i in range(REQUESTS) if record.data.get(f"k{i}") != f"v{i}"]
    assert missing == [], f"{len(missing)} of {REQUESTS} writes were lost"
    assert record.data["views"] == 1


def test_the_counter_helper_counts_every_request(
    live_server: object, redis_store_settings: str
) -> None:
    browser = Browser(live_server.url)  # type: ignore[attr-defined]
    sid = browser.start_session("/incr/")
    statuses = burst(browser, ["/incr/"] * REQUESTS)
    assert statuses.count(200) == REQUESTS
    record = get_store().load(cookies.hash_id(sid))
    assert record is not None and record.data["views"] == REQUESTS + 1


def test_a_revoke_in_the_middle_of_a_burst_stays_revoked(
    live_server: object, redis_store_settings: str
) -> None:
    browser = Browser(live_server.url)  # type: ignore[attr-defined]
    sid = browser.start_session("/incr/")
    key = cookies.hash_id(sid)
    revoked = threading.Event()

    def request(index: int) -> int:
        if index == REQUESTS // 2:
            get_store().delete(key)
            revoked.set()
        return browser.get("/incr/")[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(request, range(REQUESTS)))
    assert revoked.is_set()
    assert set(statuses) <= {200, 400}  # 400: SessionInterrupted for requests caught mid-revoke
    assert get_store().load(key) is None
