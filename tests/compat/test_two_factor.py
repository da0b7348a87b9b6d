"""django-otp + django-two-factor-auth: the setup wizard, then the login wizard with TOTP."""

from __future__ import annotations

from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from django_sessionkit.stores.base import Store
from tests.compat.helpers import (
    PASSWORD,
    assert_signed_in,
    assert_signed_out,
    make_user,
    stored,
    totp,
    whoami,
)


def login_step(client: Client, step: str, data: dict[str, str]) -> object:
    fields = {f"{step}-{name}": value for name, value in data.items()}
    return client.post("/account/login/", {"login_view-current_step": step, **fields})


def test_setup_wizard_then_login_wizard_with_totp(store: Store, browser: Client) -> None:
    make_user("grace")

    # No device yet: the login wizard's password step is enough.
    response = login_step(browser, "auth", {"username": "grace", "password": PASSWORD})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert_signed_in(browser, "grace")
    assert whoami(browser)["verified"] is False

    # Setup wizard: its steps and the key it generated live in the session.
    assert browser.get("/account/two_factor/setup/").status_code == 200
    response = browser.post("/account/two_factor/setup/", {"setup_view-current_step": "welcome"})
    assert response.status_code == 200
    secret = response.context["secret_key"]
    record = stored(browser)
    assert record is not None
    assert record.data.get("django_two_factor-qr_secret_key") == secret
    response = browser.post(
        "/account/two_factor/setup/",
        {"setup_view-current_step": "generator", "generator-token": totp(secret)},
    )
    assert response.status_code == 302, response.content[:800]
    assert response["Location"] == "/account/two_factor/setup/complete/"
    assert TOTPDevice.objects.filter(user__username="grace", confirmed=True).count() == 1
    assert whoami(browser)["verified"] is True  # setup verified this session too

    browser.post("/auth/logout/")
    assert_signed_out(browser)

    # Login wizard: password, then the token; in between nobody is signed in.
    response = login_step(browser, "auth", {"username": "grace", "password": PASSWORD})
    assert response.status_code == 200
    assert response.context["wizard"]["steps"].current == "token"
    assert_signed_out(browser)

    response = login_step(browser, "token", {"otp_token": "000000"})
    assert response.status_code == 200 and response.context["form"].errors
    assert_signed_out(browser)

    response = login_step(browser, "token", {"otp_token": totp(secret)})
    assert response.status_code == 302, response.content[:800]
    assert_signed_in(browser, "grace")
    assert whoami(browser)["verified"] is True
