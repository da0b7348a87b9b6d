"""The circuit breaker: a stalled Redis costs one timeout, then 503s at once, then a probe."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from django_sessionkit.stores import get_store
from django_sessionkit.stores.breaker import CircuitBreaker, CircuitOpen
from tests.redis_servers import Standalone

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(redis_standalone: Standalone) -> Iterator[Standalone]:
    store = {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": redis_standalone.url,
        "OPTIONS": {"PREFIX": f"breaker-{os.getpid()}-{time.monotonic_ns()}:"},
    }
    with override_settings(SESSIONKIT={"STORE": store}):
        yield redis_standalone
        get_store().close()  # type: ignore[attr-defined]


def timed(browser: Client) -> tuple[int, float]:
    started = time.monotonic()
    status = browser.get("/incr/").status_code
    return status, time.monotonic() - started


def test_a_stalled_redis_costs_one_timeout_then_503s_at_once_then_recovers(
    own_redis: Standalone,
) -> None:
    process = own_redis.server.process
    assert process is not None
    browser = Client()
    assert browser.get("/incr/").json() == {"views": 1}
    os.kill(process.pid, signal.SIGSTOP)
    try:
        first = timed(browser)
        following = [timed(browser) for _ in range(20)]
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert first[0] == 503 and first[1] < 1.5, first
    assert {status for status, _ in following} == {503}
    assert max(seconds for _, seconds in following) < 0.1, following  # nobody waited
    time.sleep(get_store().breaker.cool_down)
    assert browser.get("/incr/").json() == {"views": 2}  # the probe closes the circuit
    assert not get_store().breaker.is_open


def test_only_one_probe_goes_through_after_the_cool_down() -> None:
    breaker = CircuitBreaker("test", {"BREAKER_COOL_DOWN": 0.05})
    breaker.failed(timed_out=True)
    with pytest.raises(CircuitOpen):
        breaker.admit()
    time.sleep(0.06)
    breaker.admit()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.admit()  # others wait for the probe's outcome
    breaker.failed(timed_out=False)  # the probe failed: open again
    with pytest.raises(CircuitOpen):
        breaker.admit()
    time.sleep(0.06)
    breaker.admit()
    breaker.succeeded()
    breaker.admit()
    breaker.admit()  # closed


def test_failures_other_than_timeouts_open_it_after_the_threshold() -> None:
    breaker = CircuitBreaker("test", {"BREAKER_FAILURES": 3})
    for _ in range(2):
        breaker.failed(timed_out=False)
        breaker.admit()
    breaker.failed(timed_out=False)
    with pytest.raises(CircuitOpen):
        breaker.admit()


def test_a_success_resets_the_count_and_a_zero_cool_down_turns_it_off() -> None:
    breaker = CircuitBreaker("test", {"BREAKER_FAILURES": 2})
    breaker.failed(timed_out=False)
    breaker.succeeded()
    breaker.failed(timed_out=False)
    breaker.admit()  # 1 in a row, not 2
    off = CircuitBreaker("test", {"BREAKER_COOL_DOWN": 0})
    for _ in range(10):
        off.failed(timed_out=True)
    off.admit()


def test_the_breaker_is_shared_by_the_threads_of_a_process(own_redis: Standalone) -> None:
    store = get_store()
    store.breaker.failed(timed_out=True)
    outcomes: list[int] = []

    def request() -> None:
        outcomes.append(Client().get("/incr/").status_code)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [503] * 4
