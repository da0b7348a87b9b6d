"""contrib.messages with SessionStorage, and CSRF_USE_SESSIONS = True."""

from __future__ import annotations

import re

from django.conf import settings
from django.test import Client, override_settings

from django_sessionkit.stores.base import Store
from tests.compat.helpers import PASSWORD, assert_signed_in, django_login, make_user, stored

TEXT = "Saved, and kept in the session until shown."


def test_messages_wait_in_the_session_until_shown(store: Store, browser: Client) -> None:
    assert settings.MESSAGE_STORAGE.endswith("session.SessionStorage")
    make_user("liam")
    django_login(browser, "liam")

    response = browser.get("/messages/add/")
    assert response.status_code == 302
    record = stored(browser)
    assert record is not None and "_messages" in record.data

    assert browser.get("/messages/show/").json() == {"messages": [TEXT]}
    record = stored(browser)
    assert record is not None and "_messages" not in record.data
    assert browser.get("/messages/show/").json() == {"messages": []}
    assert_signed_in(browser, "liam")


def test_messages_for_an_anonymous_visitor(store: Store, browser: Client) -> None:
    response = browser.get("/messages/add/", follow=True)
    assert response.json() == {"messages": [TEXT]}
    assert browser.get("/messages/show/").json() == {"messages": []}


def form_token(client: Client) -> str:
    response = client.get("/form/")
    assert response.status_code == 200
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', response.content)
    assert found is not None
    return found.group(1).decode()


@override_settings(CSRF_USE_SESSIONS=True)
def test_csrf_token_in_the_session(store: Store) -> None:
    make_user("mia")
    browser = Client(enforce_csrf_checks=True)

    token = form_token(browser)
    assert settings.CSRF_COOKIE_NAME not in browser.cookies  # no CSRF cookie: the session
    record = stored(browser)
    assert record is not None and record.data.get("_csrftoken")

    assert browser.post("/form/").status_code == 403
    response = browser.post("/form/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 200 and response.content == b"accepted"

    response = browser.post(
        "/auth/login/", {"username": "mia", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert_signed_in(browser, "mia")
    # login() rotated the token: the one from before is refused, the new one accepted.
    assert browser.post("/form/", {"csrfmiddlewaretoken": token}).status_code == 403
    token = form_token(browser)
    assert browser.post("/form/", {"csrfmiddlewaretoken": token}).status_code == 200

    # Logging out ends the session, and the token with it.
    assert browser.post("/auth/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert browser.post("/form/", {"csrfmiddlewaretoken": token}).status_code == 403
