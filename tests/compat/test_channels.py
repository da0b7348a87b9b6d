"""Channels' AuthMiddlewareStack: a websocket consumer sees the user of the session cookie."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.consumers import application
from tests.compat.helpers import cookie_value, django_login, make_user


def talk(cookie: str | None) -> list[Any]:
    """Connect with ``cookie`` as the Cookie header, ask the consumer to write the session."""

    async def run() -> list[Any]:
        headers = [] if cookie is None else [(b"cookie", cookie.encode())]
        communicator = WebsocketCommunicator(application, "/ws/whoami/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        received = [await communicator.receive_json_from()]
        if cookie is not None:
            await communicator.send_json_to({"remember": "from the websocket"})
            received.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return received

    return async_to_sync(run)()


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
    assert hello == {"user": "kate"}
    assert saved == {"saved": True}

    # What the consumer saved into the session is there for the browser's next request.
    data = browser.get("/session/").json()["data"]
    assert data["remembered_over_websocket"] == "from the websocket"
    assert data["_auth_user_id"] == str(user.pk)


def test_consumer_without_a_cookie_is_anonymous(store: Store) -> None:
    assert talk(None) == [{"user": None}]
