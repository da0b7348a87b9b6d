"""django.contrib.auth's own views: password change keeps this browser signed in, reset flow."""

from __future__ import annotations

import re

from django.core import mail
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import (
    PASSWORD,
    assert_signed_in,
    assert_signed_out,
    django_login,
    key_in_store,
    make_user,
    stored,
)


def test_password_change_keeps_this_browser_signed_in(store: Store, browser: Client) -> None:
    make_user("alice")
    other_browser = Client()
    django_login(browser, "alice")
    django_login(other_browser, "alice")
    assert_signed_in(other_browser, "alice")
    before = key_in_store(browser)

    response = browser.post(
        "/auth/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "n3w-pa55word!",
            "new_password2": "n3w-pa55word!",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/auth/password_change/done/"

    # update_session_auth_hash: a new id for this browser, still signed in ...
    after = key_in_store(browser)
    assert after != before
    assert before is not None and not store.exists(before)
    assert_signed_in(browser, "alice")
    # ... while the other browser's session no longer matches the password.
    assert_signed_out(other_browser)
    django_login(browser, "alice", "n3w-pa55word!")


def test_password_reset_flow(store: Store, browser: Client) -> None:
    make_user("alice", email="alice@example.test")
    response = browser.post("/auth/password_reset/", {"email": "alice@example.test"})
    assert response.status_code == 302
    (message,) = mail.outbox
    link = re.search(r"https?://[^/\s]+(/auth/reset/\S+/)", message.body)
    assert link is not None, message.body

    # The token goes into the session and the browser is sent to a URL without it.
    response = browser.get(link.group(1))
    assert response.status_code == 302 and response["Location"].endswith("/set-password/")
    record = stored(browser)
    assert record is not None and "_password_reset_token" in record.data

    response = browser.post(
        response["Location"], {"new_password1": "r3set-pa55!", "new_password2": "r3set-pa55!"}
    )
    assert response.status_code == 302 and response["Location"] == "/auth/reset/done/"
    assert_signed_out(browser)
    django_login(browser, "alice", "r3set-pa55!")
    assert_signed_in(browser, "alice")
