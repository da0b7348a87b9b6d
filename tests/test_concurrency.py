"""Overlapping requests of one browser never lose each other's changes (real server, threads),
on the database store (SQLite file, PostgreSQL, MariaDB), RedisStore (standalone, Cluster)
and MongoStore (our own nx-27017)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.test import override_settings

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores import get_store
from tests.mongo_fixtures import mongo_sessionkit
from tests.redis_fixtures import sessionkit_on

pytestmark = [pytest.mark.slow]

REQUESTS = 400
THREADS = 16


class Browser:
    """One cookie, shared by many connections (tabs) at once."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookie = ""
        self.local = threading.local()

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie, "Connection": "keep-alive"})
        response = conn.getresponse()
        body = response.read()
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return response.status, data

    def get_text(self, path: str) -> tuple[int, str]:
        """One request on a connection of its own: the status and the body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("GET", path, headers={"Cookie": self.cookie})
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        return response.status, body

    def start_session(self, path: str) -> str:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        set_cookie = response.getheader("Set-Cookie") or ""
        self.cookie = set_cookie.split(";")[0]
        sid = cookies.unsign(
            cookies.decode_value(self.cookie.split("=", 1)[1]), sessionkit_settings.SECRETS
        )
        assert sid, set_cookie
        return sid


REDIS = {
    "redis_standalone": ("redis_standalone", {}),
    "redis_sentinel": ("redis_sentinel", {}),
    "redis_cluster": ("redis_cluster", {}),  # 16 index shards
    "redis_cluster_one_shard": ("redis_cluster", {"INDEX_SHARDS": 1}),
    "valkey_cluster": ("valkey_cluster", {}),
}


@pytest.fixture(params=["sqlite_file", "pg", "mysql", *REDIS, "mongo"])
def store_alias(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each store in turn: the database store on three databases, Redis and Valkey on every
    topology (a Cluster with index shards and with the single index), MongoDB."""
    where = request.param
    request.getfixturevalue("transactional_db")
    if where == "mongo":
        with mongo_sessionkit(request.getfixturevalue("mongo_server")):
            yield where
        return
    if where in REDIS:
        setup, options = REDIS[where]
        with sessionkit_on(request.getfixturevalue(setup), **options):
            yield where
        return
    if where in ("pg", "mysql"):
        request.getfixturevalue(f"{where}_alias")
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": where}}):
        yield where


def burst(browser: Browser, paths: list[str]) -> list[int]:
    with ThreadPoolExecutor(THREADS) as pool:
        return [status for status, _ in pool.map(browser.get, paths)]


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_every_concurrent_write_to_its_own_key_survives(
    live_server: object, store_alias: str
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


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_the_counter_helper_counts_every_request(live_server: object, store_alias: str) -> None:
    browser = Browser(live_server.url)  # type: ignore[attr-defined]
    sid = browser.start_session("/incr/")
    statuses = burst(browser, ["/incr/"] * REQUESTS)
    assert statuses.count(200) == REQUESTS
    record = get_store().load(cookies.hash_id(sid))
    assert record is not None and record.data["views"] == REQUESTS + 1


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_a_revoke_in_the_middle_of_a_burst_stays_revoked(
    live_server: object, store_alias: str
) -> None:
    browser = Browser(live_server.url)  # type: ignore[attr-defined]
    sid = browser.start_session("/incr/")
    key = cookies.hash_id(sid)
    paths = ["/incr/"] * REQUESTS
    revoked = threading.Event()

    def request(index: int) -> int:
        if index == REQUESTS // 2:
            try:
                get_store().delete(key)
            finally:
                connections.close_all()  # this pool thread's own connection
            revoked.set()
        return browser.get(paths[index])[0]

    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(request, range(REQUESTS)))
    assert revoked.is_set()
    assert set(statuses) <= {200, 400}  # 400: SessionInterrupted for requests caught mid-revoke
    assert get_store().load(key) is None


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_simultaneous_logins_past_the_limit_leave_exactly_the_limit(
    live_server: object, store_alias: str
) -> None:
    """MAX_SESSIONS_PER_USER = N and N + 3 logins of one user at once: exactly N are left,
    the most recently seen ones."""
    from django.contrib.auth import get_user_model

    from django_sessionkit.conf import sessionkit_settings

    limit = 3
    get_user_model().objects.create_user("racer", password="x")
    with override_settings(SESSIONKIT={**sessionkit_settings.raw, "MAX_SESSIONS_PER_USER": limit}):
        browsers = [Browser(live_server.url) for _ in range(limit + 3)]  # type: ignore[attr-defined]
        with ThreadPoolExecutor(len(browsers)) as pool:
            statuses = list(pool.map(lambda b: b.get("/login/racer/")[0], browsers))
        assert statuses == [200] * len(browsers)
        user_id = str(get_user_model().objects.get(username="racer").pk)
        assert get_store().count(user_id=user_id) == limit


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file", "pg", "mysql"])
def test_simultaneous_logins_past_a_refusing_limit_leave_exactly_the_limit(
    live_server: object, store_alias: str
) -> None:
    """MAX_SESSIONS_POLICY = "refuse": N + 1 simultaneous logins of one user leave exactly N
    sessions and exactly one login is refused, with the message; N + 5 of another user leave
    N and refuse 5."""
    from django.contrib.auth import get_user_model

    from django_sessionkit.conf import sessionkit_settings
    from django_sessionkit.limits import DEFAULT_MESSAGE

    limit = 3
    users = get_user_model().objects
    settings = {
        **sessionkit_settings.raw,
        "MAX_SESSIONS_PER_USER": limit,
        "MAX_SESSIONS_POLICY": "refuse",
    }
    with override_settings(SESSIONKIT=settings):
        for name, extra in (("racer", 1), ("crowd", 5)):
            user_id = str(users.create_user(name, password="x").pk)
            browsers = [Browser(live_server.url) for _ in range(limit + extra)]  # type: ignore[attr-defined]
            path = f"/login/{name}/"
            with ThreadPoolExecutor(len(browsers)) as pool:
                answers = list(pool.map(lambda b, path=path: b.get_text(path), browsers))
            statuses = sorted(status for status, _ in answers)
            assert statuses == [200] * limit + [403] * extra, name
            refused = [body for status, body in answers if status == 403]
            assert all(DEFAULT_MESSAGE.replace("{limit}", str(limit)) in b for b in refused)
            assert get_store().count(user_id=user_id) == limit
