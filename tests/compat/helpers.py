"""What the compatibility flows share: signing in, reading the store, TOTP codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from django_sessionkit import cookies
from django_sessionkit.engine import store_key
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import SessionRecord
from tests.compat.consumers import application

PASSWORD = "correct horse battery staple"


def make_user(username: str, password: str = PASSWORD, **fields: Any) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, password=password, **fields)


def cookie_value(client: Client) -> str | None:
    morsel = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def key_in_store(client: Client) -> str | None:
    """The store key of the session the client's cookie names (None: no valid cookie)."""
    value = cookie_value(client)
    session_id = cookies.cookie_to_id(cookies.decode_value(value)) if value else None
    return None if session_id is None else store_key(session_id)


def stored(client: Client) -> SessionRecord | None:
    """The record the client's cookie leads to in the store of this test, or None."""
    key = key_in_store(client)
    return None if key is None else get_store().load(key)


def view_key(client: Client) -> str | None:
    """``request.session.session_key`` as a view sees it for this client."""
    key: str | None = client.get("/session/key/").json()["session_key"]
    return key


def whoami(client: Client) -> dict[str, Any]:
    response = client.get("/whoami/")
    assert response.status_code == 200, response
    data: dict[str, Any] = response.json()
    return data


def assert_signed_in(client: Client, username: str) -> SessionRecord:
    """The client is signed in as ``username``, and the store's record says so too."""
    assert whoami(client)["user"] == username
    record = stored(client)
    assert record is not None, "the cookie leads to no session in the store"
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get_by_natural_key(username)
    assert record.user_id == str(user.pk)
    return record


def assert_signed_out(client: Client) -> None:
    assert whoami(client)["user"] is None
    record = stored(client)
    assert record is None or record.user_id is None


def django_login(client: Client, username: str, password: str = PASSWORD) -> None:
    """Sign in through django.contrib.auth's LoginView (a real POST, as a browser does)."""
    response = client.post("/auth/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content[:500]


def totp(secret_b32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 code for a base32 secret (what an authenticator app shows)."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


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
