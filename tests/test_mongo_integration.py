"""The whole stack on MongoStore: requests through the middleware, sync and ASGI, round trips
per request against DESIGN.md's budgets, a server stopped or stalled between and during
requests, and saves whose reply is lost (applied once). Runs on our own nx-27017."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, override_settings

from django_sessionkit.engine import SessionStore
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import StoreUnavailable
from django_sessionkit.stores.mongo import MongoStore
from tests.mongo_fixtures import (
    FAST_FAILURE,
    MongoServer,
    command_counter,
    drop_collection,
    mongo_sessionkit,
    store_options,
)
from tests.tcp_proxy import Proxy, proxy_to

pytestmark = pytest.mark.django_db


def own_server(server: MongoServer) -> MongoServer:
    if server.external_url:
        pytest.skip("stops or stalls our own nx-27017")
    return server


@pytest.fixture
def counted(mongo_server: MongoServer) -> Iterator[Any]:
    """SESSIONKIT on MongoStore; yields a counter of the commands each request sends."""
    counter = command_counter()
    with mongo_sessionkit(mongo_server, CLIENT_KWARGS={"event_listeners": [counter]}):
        Client().get("/plain/")  # the first use creates the indexes
        get_store().count()
        yield counter


def test_requests_keep_their_session_in_mongodb(mongo_settings: MongoStore) -> None:
    client = Client()
    assert client.get("/count/").json() == {"views": 1}
    assert client.get("/count/").json() == {"views": 2}
    assert isinstance(get_store(), MongoStore) and get_store().count() == 1


# --- round trips per request (DESIGN.md) --------------------------------------------------


def test_round_trips_per_request_are_within_the_budgets(counted: Any, user: Any) -> None:
    client = Client()
    with counted.counting() as new:
        client.get("/count/")
    with counted.counting() as untouched:
        client.get("/plain/")
    with counted.counting() as read:
        client.get("/read/")
    with counted.counting() as write:
        client.get("/count/")
    with counted.counting() as login:
        client.get("/login/alice/")
    assert new == ["insert"]
    assert untouched == []
    assert read == ["find"]
    assert write == ["find", "findAndModify"]
    assert login == ["find", "delete", "insert"]  # load, old id gone, new id saved


def test_an_unmodified_rolling_read_is_a_touch_without_the_data(counted: Any) -> None:
    with override_settings(SESSIONKIT={**_current(), "ROLLING": True}):
        client = Client()
        client.get("/count/")
        with counted.counting() as rolling:
            client.get("/read/")
    assert rolling == ["find", "update"]


def _current() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.SESSIONKIT)


# --- ASGI: the native async client ------------------------------------------------------


def test_asgi_requests_use_the_async_client(mongo_server: MongoServer, user: Any) -> None:
    counter = command_counter()
    with mongo_sessionkit(mongo_server, CLIENT_KWARGS={"event_listeners": [counter]}):
        store = get_store()
        sync_sends: list[str] = []
        original = store._call

        def no_sync_calls(*args: Any) -> Any:
            sync_sends.append("sync")
            return original(*args)

        store._call = no_sync_calls  # type: ignore[method-assign]

        async def scenario() -> list[Any]:
            client = AsyncClient()
            first = (await client.get("/async/count/")).json()
            second = (await client.get("/async/count/")).json()
            await client.get("/async/login/alice/")
            body = (await client.get("/async/read/")).json()
            await store.aclose()
            return [first, second, body["user"], body["data"]["views"]]

        with counter.counting() as sent:
            assert async_to_sync(scenario)() == [{"views": 1}, {"views": 2}, "alice", 2]
        assert sync_sends == []  # every command went through AsyncMongoClient
        assert "findAndModify" in sent and "insert" in sent
        del store._call


# --- failing fast -------------------------------------------------------------------------


def test_a_stopped_server_answers_503_then_every_session_is_back(
    mongo_server: MongoServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_server(mongo_server)
    with mongo_sessionkit(server, BREAKER_COOL_DOWN=0.2):
        clients = [Client() for _ in range(3)]
        for client in clients:
            client.get("/count/")
        server.stop()
        try:
            started = time.monotonic()
            with caplog.at_level(logging.ERROR, logger="django_sessionkit"):
                response = clients[0].get("/count/")
                again = clients[1].get("/count/")
            waited = time.monotonic() - started
        finally:
            server.start()
        assert response.status_code == again.status_code == 503
        assert response["Retry-After"]
        assert waited < 1.6, f"a stopped server held two requests {waited:.2f} s"
        time.sleep(0.3)  # the cool-down; the next request probes the server
        for client in clients:
            assert client.get("/count/").json() == {"views": 2}


def test_an_asgi_request_with_the_server_stopped_gets_503(mongo_server: MongoServer) -> None:
    server = own_server(mongo_server)
    with mongo_sessionkit(server, BREAKER_COOL_DOWN=0.2):
        store = get_store()

        async def request() -> tuple[int, int]:
            client = AsyncClient()
            await client.get("/async/count/")
            server.stop()
            try:
                down = (await client.get("/async/count/")).status_code
            finally:
                server.start()
            await asyncio.sleep(0.3)  # the cool-down; the next request probes the server
            again = (await client.get("/async/count/")).json()["views"]
            await store.aclose()
            return down, again

        assert async_to_sync(request)() == (503, 2)


def test_a_save_sent_to_a_stalled_server_is_applied_once(mongo_server: MongoServer) -> None:
    """SIGSTOP during a save: the request fails within TIMEOUT and the breaker opens; the
    server runs the save it had received when it resumes, once."""
    server = own_server(mongo_server)
    with mongo_sessionkit(server, TIMEOUT=0.5):
        session = SessionStore()
        session["views"] = 10
        session.save()
        again = SessionStore(session.session_key)
        again.incr("views")
        failed: list[BaseException] = []

        def save() -> None:
            try:
                again.save()
            except StoreUnavailable as exc:
                failed.append(exc)

        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            writer = threading.Thread(target=save)
            started = time.monotonic()
            writer.start()
            writer.join(30)
            waited = time.monotonic() - started
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert failed and failed[0].timed_out, "the save should have timed out"
        assert waited < 1.5, f"a stalled server held the request {waited:.1f} s"
        time.sleep(0.7)  # the server runs what it had received; the breaker cools down
        assert SessionStore(session.session_key)["views"] == 11  # once, never twice


# --- a lost reply ---------------------------------------------------------------------------


@pytest.fixture
def through_proxy(mongo_server: MongoServer) -> Iterator[Proxy]:
    server = own_server(mongo_server)
    assert server.port is not None
    with proxy_to(server.port) as proxy:
        options = store_options()
        config = {
            "BACKEND": "django_sessionkit.stores.mongo.MongoStore",
            # One connection, so that the proxy cuts the very one the save went over.
            "LOCATION": f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true",
            "OPTIONS": options,
        }
        try:
            with override_settings(SESSIONKIT={"STORE": config}):
                yield proxy
                get_store().close()
        finally:
            drop_collection(server, options["COLLECTION"])


def test_a_save_whose_reply_is_lost_is_retried_but_counted_once(through_proxy: Proxy) -> None:
    browser = Client()
    assert browser.get("/incr/").json() == {"views": 1}
    for expected in range(2, 7):
        through_proxy.drop_reply_to(b"findAndModify")  # the save runs; its reply never comes
        assert browser.get("/incr/").json() == {"views": expected}
    assert through_proxy.dropped["cut"] == 5
    assert browser.get("/read/").json()["data"] == {"views": 6}


def test_a_new_session_whose_reply_is_lost_is_created_once(through_proxy: Proxy) -> None:
    through_proxy.drop_reply_to(b"insert")
    browser = Client()
    assert browser.get("/incr/").json() == {"views": 1}
    assert through_proxy.dropped["cut"] == 1
    assert browser.get("/incr/").json() == {"views": 2}
    assert get_store().count() == 1  # the retried insert did not make a second session


def test_fast_failure_options_are_valid() -> None:
    assert MongoStore.check("mongodb://127.0.0.1:27017", FAST_FAILURE) == []
