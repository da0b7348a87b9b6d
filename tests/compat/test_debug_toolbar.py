"""django-debug-toolbar: the request panel shows the session's data."""

from __future__ import annotations

import re

from django.test import Client, override_settings

from django_sessionkit.stores.base import Store
from tests.compat.helpers import django_login, make_user


@override_settings(DEBUG=True, INTERNAL_IPS=["127.0.0.1"])
def test_request_panel_shows_the_session(store: Store, browser: Client) -> None:
    make_user("judy")
    django_login(browser, "judy")
    assert browser.get("/session/set/favourite_colour/teal/").status_code == 200

    page = browser.get("/page/")
    assert page.status_code == 200
    found = re.search(rb'data-request-id="([0-9a-f]+)"', page.content)
    assert found is not None, "no toolbar in the page"

    response = browser.get(
        "/__debug__/render_panel/",
        {"request_id": found.group(1).decode(), "panel_id": "RequestPanel"},
    )
    assert response.status_code == 200
    content = response.json()["content"]
    assert "Session data" in content
    assert "favourite_colour" in content and "teal" in content
    assert "_auth_user_id" in content
