"""Lifecycle events: created, rotated, ended (with its reason and who), client changed.

Each receiver also looks at the store when it is called: an event comes after the store
has answered (the session it announces is there, or gone), never before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings

from django_sessionkit import signals
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store, utcnow
from tests.command_helpers import run
from tests.test_lifetimes import key_of, lifetimes, rewrite, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        store = get_store()
        key = kwargs["key_hash"]
        kwargs["stored"] = store.load(key) is not None  # what the store says at that moment
        kwargs["name"] = {
            signals.session_created: "created",
            signals.session_rotated: "rotated",
            signals.session_ended: "ended",
            signals.session_client_changed: "client_changed",
        }[kwargs["signal"]]
        seen.append(kwargs)

    def receiver(sender: Any, **kwargs: Any) -> None:  # Django passes signal= too
        record(**kwargs)

    every = (
        signals.session_created,
        signals.session_rotated,
        signals.session_ended,
        signals.session_client_changed,
    )
    for signal in every:
        signal.connect(receiver, weak=False)
    yield seen
    for signal in every:
        signal.disconnect(receiver)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]


def test_created_rotated_and_ended_at_logout(
    each_store: Store, events: list[dict[str, Any]], user: Any
) -> None:
    browser = Client()
    browser.get("/count/")
    first = key_of(browser)
    assert names(events) == ["created"] and events[0]["key_hash"] == first
    assert events[0]["stored"] and events[0]["request"] is not None
    browser.get("/login/alice/")
    second = key_of(browser)
    rotated = [e for e in events if e["name"] == "rotated"]
    assert rotated and rotated[0]["old_key_hash"] == first and rotated[0]["key_hash"] == second
    assert not [e for e in events if e["name"] == "ended"]
    events.clear()
    browser.get("/logout/")
    ended = [e for e in events if e["name"] == "ended"]
    assert ended and ended[0]["key_hash"] == second and ended[0]["reason"] == "logout"
    assert ended[0]["user_id"] == str(user.pk) and not ended[0]["stored"]


def test_ended_by_the_admin_the_user_page_and_the_command(
    each_store: Store, events: list[dict[str, Any]], user: Any, admin_client: Client
) -> None:
    phone, laptop, tablet = signed_in("alice"), signed_in("alice"), signed_in("alice")
    events.clear()
    ref = key_of(phone)[:12]
    admin_client.post(
        "/admin/django_sessionkit/session/revoke/",
        {"action": "selected", "session": ref, "confirm": "yes"},
    )
    by_admin = [e for e in events if e["name"] == "ended" and e["by"] == "admin"]
    assert [e["key_hash"] for e in by_admin] == [key_of(phone)]
    assert by_admin[0]["reason"] == "revoked" and not by_admin[0]["stored"]
    events.clear()
    laptop.post("/account/sessions/end-others/")
    by_user = [e for e in events if e["name"] == "ended"]
    assert [(e["key_hash"], e["by"]) for e in by_user] == [(key_of(tablet), "user")]
    events.clear()
    run("revokesessions", "--user", "alice", "--no-input")
    by_command = [e for e in events if e["name"] == "ended"]
    assert [(e["key_hash"], e["by"]) for e in by_command] == [(key_of(laptop), "command")]


def test_ended_by_an_idle_timeout_and_a_password_change(
    each_store: Store, events: list[dict[str, Any]], user: Any
) -> None:
    with lifetimes(IDLE_TIMEOUT=3600):
        idle = Client()
        idle.get("/count/")
        rewrite(each_store, key_of(idle), last_seen=utcnow() - timedelta(hours=2))
        gone = key_of(idle)
        events.clear()
        idle.get("/count/")
        timed_out = [e for e in events if e["name"] == "ended"]
        assert [(e["key_hash"], e["reason"]) for e in timed_out] == [(gone, "idle_timeout")]
    laptop, phone = signed_in("alice"), signed_in("alice")
    events.clear()
    laptop.get("/password/alice/")
    changed = [e for e in events if e["name"] == "ended"]
    assert [(e["key_hash"], e["reason"]) for e in changed] == [(key_of(phone), "password_changed")]


def test_client_changed(each_store: Store, events: list[dict[str, Any]]) -> None:
    browser = Client(REMOTE_ADDR="10.0.0.1", HTTP_USER_AGENT="Firefox")
    browser.get("/count/")
    events.clear()
    browser.get("/count/")
    assert "client_changed" not in names(events)
    browser.get("/count/", REMOTE_ADDR="10.9.9.9")
    changed = [e for e in events if e["name"] == "client_changed"]
    assert changed and changed[0]["before"] == ("10.0.0.1", "Firefox")
    assert changed[0]["after"] == ("10.9.9.9", "Firefox")


def test_a_receiver_that_raises_is_logged_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("the receiver's own bug")

    signals.session_created.connect(broken, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="django_sessionkit"):
            assert Client().get("/count/").json() == {"views": 1}
    finally:
        signals.session_created.disconnect(broken)
    assert any("the receiver's own bug" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
async def test_events_under_asgi(events: list[dict[str, Any]], user: Any) -> None:
    from django.test import AsyncClient

    browser = AsyncClient()
    await browser.get("/async/count/")
    await browser.get("/async/login/alice/")
    assert names(events)[:2] == ["created", "rotated"]


@override_settings(SESSIONKIT={})
def test_no_receiver_no_cost() -> None:
    assert not signals.session_ended.has_listeners()
