"""What README.md's "Coming from django.contrib.sessions" tells a newcomer, checked."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_sessionkit.models import Session

pytestmark = pytest.mark.django_db

BEHIND_A_TLS_PROXY = {"HTTP_X_FORWARDED_PROTO": "https"}


@override_settings(SESSION_COOKIE_SECURE=True)
def test_a_secure_cookie_over_plain_http_is_not_saved_so_logging_in_does_nothing(
    user: object, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    with caplog.at_level(logging.WARNING, logger="django_sessionkit"):
        assert client.get("/login/alice/").status_code == 200
    assert "sessionid" not in client.cookies
    assert Session.objects.count() == 0
    assert client.get("/whoami/").json() == {"user": None}
    warning = caplog.text
    assert "Secure" in warning
    assert "SECURE_PROXY_SSL_HEADER" in warning and "PROXY" in warning


@override_settings(
    SESSION_COOKIE_SECURE=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")
)
def test_secure_proxy_ssl_header_behind_a_tls_proxy_saves_it(user: object) -> None:
    client = Client(**BEHIND_A_TLS_PROXY)
    response = client.get("/login/alice/")
    assert "Secure" in response.cookies["sessionid"].output()
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert Session.objects.count() == 1


@override_settings(SESSION_COOKIE_SECURE=True, SESSIONKIT={"PROXY": True})
def test_sessionkit_proxy_behind_a_tls_proxy_saves_it(user: object) -> None:
    client = Client(**BEHIND_A_TLS_PROXY)
    client.get("/login/alice/")
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert Client().get("/whoami/").json() == {"user": None}  # a plain request: no session


def test_the_where_youre_signed_in_page_as_readme_wires_it(user: object) -> None:
    # tests/testapp/urls.py has README's line: path("account/sessions/", include(...)).
    assert reverse("sessionkit:sessions") == "/account/sessions/"
    assert reverse("sessionkit:end") == "/account/sessions/end/"
    assert reverse("sessionkit:end_others") == "/account/sessions/end-others/"
    anonymous = Client().get("/account/sessions/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]  # LOGIN_URL
    laptop, phone = Client(), Client()
    laptop.get("/login/alice/")
    phone.get("/login/alice/")
    page = laptop.get("/account/sessions/")
    assert page.status_code == 200
    assert len(page.context["sessions"]) == 2 and page.context["others"] == 1
