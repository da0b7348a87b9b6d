"""REST framework's SessionAuthentication with CSRF enforced (token in a cookie or the session)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_sessionkit.stores.base import Store
from tests.compat.helpers import PASSWORD, make_user, stored


@pytest.mark.parametrize("csrf_use_sessions", [False, True], ids=["csrf-cookie", "csrf-session"])
def test_session_authentication_refuses_a_post_without_the_csrf_token(
    store: Store, csrf_use_sessions: bool
) -> None:
    make_user("heidi")
    browser = Client(enforce_csrf_checks=True)
    with override_settings(CSRF_USE_SESSIONS=csrf_use_sessions):
        assert browser.get("/api/echo/").status_code == 403  # not signed in

        token = browser.get("/csrf-token/").content.decode()
        response = browser.post(
            "/auth/login/",
            {"username": "heidi", "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302
        assert browser.get("/api/echo/").json() == {"user": "heidi"}

        token = browser.get("/csrf-token/").content.decode()  # login rotated it
        record = stored(browser)
        assert record is not None
        if csrf_use_sessions:
            assert "_csrftoken" in record.data
            assert settings.CSRF_COOKIE_NAME not in browser.cookies

        body = {"n": 1}
        response = browser.post("/api/echo/", body, content_type="application/json")
        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]

        response = browser.post(
            "/api/echo/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
        )
        assert response.status_code == 200
        assert response.json() == {"user": "heidi", "echo": body}
        record = stored(browser)
        assert record is not None and record.data["api_posts"] == 1
