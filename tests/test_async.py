"""The middleware under ASGI: the async store API, login, and Django's async session API."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.test import AsyncClient

from django_sessionkit import cookies
from django_sessionkit.middleware import SessionMiddleware
from django_sessionkit.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


async def test_async_visit_counter_and_login(user: object) -> None:
    client = AsyncClient()
    assert (await client.get("/async/count/")).json() == {"views": 1}
    assert (await client.get("/async/count/")).json() == {"views": 2}
    before = unquote(client.cookies["sessionid"].value)
    response = await client.get("/async/login/alice/")
    assert response.status_code == 200
    after = unquote(client.cookies["sessionid"].value)
    assert after != before
    body = (await client.get("/async/read/")).json()
    assert body["user"] == "alice"
    assert body["data"]["views"] == 2
    rows = [row async for row in Session.objects.all()]
    assert len(rows) == 1 and rows[0].user_id == str(user.pk)  # type: ignore[attr-defined]
    assert rows[0].key == cookies.hash_id(
        cookies.unsign(after, cookies.sessionkit_settings.SECRETS) or ""
    )


async def test_async_metadata_is_kept() -> None:
    client = AsyncClient()
    await client.get("/async/count/", headers={"User-Agent": "AsyncAgent/1.0"})
    await client.get("/async/count/", headers={"User-Agent": "AsyncAgent/1.0"})
    row = await Session.objects.aget()
    assert row.user_agent == "AsyncAgent/1.0"
    assert row.ip == "127.0.0.1"


def test_the_middleware_is_async_capable() -> None:
    async def view(request: object) -> None:
        return None

    middleware = SessionMiddleware(view)  # type: ignore[arg-type]
    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(middleware)
    assert SessionMiddleware.sync_capable and SessionMiddleware.async_capable
