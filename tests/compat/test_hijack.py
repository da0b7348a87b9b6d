"""django-hijack: a superuser takes over another user's session, then releases it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import (
    PASSWORD,
    assert_signed_in,
    django_login,
    key_in_store,
    make_user,
    whoami,
)


def test_acquire_and_release(store: Store, browser: Client) -> None:
    boss = get_user_model().objects.create_superuser("boss", password=PASSWORD)
    target = make_user("ivan")
    django_login(browser, "boss")
    before = key_in_store(browser)

    response = browser.post("/hijack/acquire/", {"user_pk": target.pk, "next": "/whoami/"})
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    record = assert_signed_in(browser, "ivan")
    assert whoami(browser)["hijacked"] is True
    assert record.data["hijack_history"] == [str(boss.pk)]
    assert before is not None and not store.exists(before)  # login() gave a new id

    page = browser.get("/page/")
    assert b"signed in as ivan" in page.content
    assert b"/hijack/release/" in page.content  # hijack's banner, from the session's history

    response = browser.post("/hijack/release/", {"next": "/whoami/"})
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    record = assert_signed_in(browser, "boss")
    assert whoami(browser)["hijacked"] is False
    assert record.data["hijack_history"] == []
