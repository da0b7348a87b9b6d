"""Channels' AuthMiddlewareStack: a websocket consumer sees the user of the session cookie."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import cookie_value, django_login, make_user, talk

# Transactional: channels' database_sync_to_async closes "old" connections around each call,
# and the connection of a test run inside a transaction counts as one.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("sign_in", ["login-view", "force_login"])
def test_consumer_sees_the_signed_in_user(store: Store, browser: Client, sign_in: str) -> None:
    user = make_user("kate")
    if sign_in == "login-view":
        django_login(browser, "kate")
    else:
        browser.force_login(user)
    value = cookie_value(browser)
    assert value is not None

    hello, saved = talk(f"{settings.SESSION_COOKIE_NAME}={value}")
    assert hello["user"] == "kate"
    assert saved == {"saved": True}

    # What the consumer saved into the session is there for the browser's next request.
    data = browser.get("/session/").json()["data"]
    assert data["remembered_over_websocket"] == "from the websocket"
    assert data["_auth_user_id"] == str(user.pk)


def test_consumer_without_a_cookie_is_anonymous(store: Store) -> None:
    assert talk(None) == [{"user": None, "session_key": None}]
