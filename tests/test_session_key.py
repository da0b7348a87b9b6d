"""``session_key`` fits where Django's fits, and no copy of it is a cookie by itself.

A request's ``request.session.session_key`` is the bare id: at most 40 characters of
``[A-Za-z0-9_-]``, stable until ``cycle_key``. Sessions made outside a request (Django's
test client, Channels, a shell) report the compact cookie instead. Every API that takes
a key accepts both, and the signed cookie.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from django.core.management.base import CommandError
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.engine import SessionStore
from django_sessionkit.middleware import SessionMiddleware
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import SessionRecord, Store, utcnow
from tests.command_helpers import run
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "format-1.json").read_text())


def cookie_id(client: Client) -> str | None:
    return cookies.cookie_to_id(unquote(client.cookies["sessionid"].value))


def visit(client: Client) -> dict[str, Any]:
    response = client.get("/key/")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_a_requests_session_key_is_its_id_and_fits_a_40_character_column(
    each_store: Store,
) -> None:
    browser = Client()
    first = visit(browser)
    assert KEY.fullmatch(first["key"]), first["key"]
    assert first["key"] == cookie_id(browser)  # the cookie carries it, with a signature
    assert cookies.hash_id(first["key"]) in {key for key, _ in each_store.iter_all()}
    second = visit(browser)
    assert second == {"key": first["key"], "views": 2}  # stable for the session's life


def test_a_copied_session_key_is_not_a_cookie(each_store: Store) -> None:
    key = visit(Client())["key"]
    thief = Client()
    thief.cookies["sessionid"] = key
    stolen = visit(thief)
    assert stolen["views"] == 1 and stolen["key"] != key  # a fresh session, not the victim's


def test_every_key_api_takes_the_session_key(each_store: Store) -> None:
    browser = Client()
    key = visit(browser)["key"]
    assert browser.session.session_key == key  # a test reading the session sees the view's
    session = SessionStore(key)
    assert session["views"] == 1 and session.session_key == key
    assert session.exists(key) and SessionStore().exists(key)
    session["cart"] = [3]
    session.save()
    assert SessionStore(key)["cart"] == [3]
    SessionStore().delete(key)
    assert not SessionStore().exists(key)
    assert visit(browser)["views"] == 1  # that browser's session really ended


def test_login_rotates_the_key(user: Any) -> None:
    browser = Client()
    before = visit(browser)["key"]
    browser.get("/login/alice/")
    after = visit(browser)
    assert after["key"] != before and KEY.fullmatch(after["key"])
    assert not SessionStore().exists(before)


def test_a_session_made_outside_a_request_reports_a_compact_cookie() -> None:
    session = SessionStore()
    session["views"] = 41
    session.save()
    key = session.session_key
    assert key is not None and KEY.fullmatch(key) and len(key) == 40
    assert key.startswith(session.session_id or "?")
    browser = Client()
    browser.cookies["sessionid"] = key  # what Django's test client and Channels do
    assert visit(browser)["views"] == 42


def test_djangos_test_client_login_and_session_keep_working(user: Any) -> None:
    browser = Client()
    browser.force_login(user)
    assert browser.get("/whoami/").json() == {"user": "alice"}
    session = browser.session
    session["note"] = "from the test"
    session.save()
    assert browser.get("/read/").json()["data"]["note"] == "from the test"
    other = Client()
    assert other.login(username="alice", password=PASSWORD)
    assert other.get("/whoami/").json() == {"user": "alice"}
    fresh = Client()
    fresh.session.save()  # no cookie yet: the client makes a session and sets its cookie
    assert KEY.fullmatch(fresh.cookies["sessionid"].value)


def test_request_factory_with_request_cookies_and_the_middleware(user: Any) -> None:
    session = SessionStore()
    session["views"] = 5
    session.save()

    def view(request: HttpRequest) -> HttpResponse:
        request.session["views"] += 1
        return HttpResponse(str(request.session["views"]))

    request = RequestFactory().get("/")
    request.COOKIES["sessionid"] = session.session_key or ""  # no Cookie header at all
    middleware = SessionMiddleware(view)
    assert middleware(request).content == b"6"
    by_hand = RequestFactory().get("/")
    by_hand.COOKIES["sessionid"] = session.session_key or ""
    middleware.process_request(by_hand)
    assert by_hand.session["views"] == 6
    by_hand.session["views"] = 7
    response = middleware.process_response(by_hand, HttpResponse())
    assert "sessionid" in response.cookies
    assert SessionStore(session.session_key)["views"] == 7


def test_a_cookie_of_release_0_1_moves_to_a_new_key_and_keeps_its_data(
    each_store: Store,
) -> None:
    """0.1.0 made 43-character ids: too long for a session_key. Such a session keeps
    working, and the first request that loads it moves it to a new id."""
    old_key = cookies.hash_id(FIXTURE["session_id"])
    now = utcnow()
    with override_settings(SESSIONKIT={**sessionkit_settings.raw, "SECRET": FIXTURE["secret"]}):
        current = get_store()
        current.save(
            old_key,
            SessionRecord(
                data={"views": 7},
                expires_at=now + timedelta(days=1),
                created_at=now,
                last_seen=now,
                user_id=None,
                ip=None,
                user_agent="",
                version=0,
            ),
            must_create=True,
        )
        browser = Client()
        browser.cookies["sessionid"] = FIXTURE["cookie"]
        moved = visit(browser)
        assert moved["views"] == 8  # the old session's data
        assert KEY.fullmatch(moved["key"]) and moved["key"] != FIXTURE["session_id"]
        assert cookie_id(browser) == moved["key"]  # the browser got the new cookie
        assert current.load(old_key) is None  # the old key is gone from the store
        assert visit(browser) == {"key": moved["key"], "views": 9}
        replay = Client()
        replay.cookies["sessionid"] = FIXTURE["cookie"]
        assert visit(replay)["views"] == 1  # the old cookie names nothing now


@override_settings(SESSIONKIT={"GENID": "tests.test_session_key.long_genid"})
def test_a_genid_that_does_not_fit_a_session_key_is_refused() -> None:
    with pytest.raises(TypeError, match=r"GENID.*16 to 40 characters"):
        Client().get("/key/")


def long_genid(request: object) -> str:
    return "x" * 41


def test_the_admin_finds_a_session_by_its_session_key(
    each_store: Store, admin_client: Client
) -> None:
    key = visit(Client())["key"]
    page = admin_client.get("/admin/django_sessionkit/session/", {"q": key})
    assert page.status_code == 200
    handle = cookies.hash_id(key)[:12]
    assert handle in page.content.decode()
    missing = admin_client.get("/admin/django_sessionkit/session/", {"q": "x" * 24})
    assert handle not in missing.content.decode()


def test_revokesessions_takes_a_session_key(each_store: Store) -> None:
    browser = Client()
    key = visit(browser)["key"]
    out = run("revokesessions", "--session", key, "--no-input")
    assert "1" in out
    assert visit(browser)["views"] == 1  # ended
    with pytest.raises(CommandError, match="or the session's session_key"):
        run("revokesessions", "--session", "not a key!", "--no-input")
