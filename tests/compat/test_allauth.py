"""django-allauth: account (signup, login, logout), mfa with TOTP, usersessions."""

from __future__ import annotations

from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.test import Client, override_settings

from django_sessionkit.stores.base import Store
from tests.compat.helpers import (
    PASSWORD,
    assert_signed_in,
    assert_signed_out,
    key_in_store,
    make_user,
    stored,
    totp,
    view_key,
)


def allauth_login(client: Client, username: str, password: str = PASSWORD) -> str:
    """POST allauth's login form; returns where it sends the browser next."""
    response = client.post("/accounts/login/", {"login": username, "password": password})
    assert response.status_code == 302, response.content[:500]
    return str(response["Location"])


def test_signup_logout_login(store: Store, browser: Client) -> None:
    response = browser.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "carol@example.test",
            "password1": "s1gn-up-Pa55!",
            "password2": "s1gn-up-Pa55!",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    assert_signed_in(browser, "carol")
    signed_up = key_in_store(browser)

    response = browser.post("/accounts/logout/")
    assert response.status_code == 302
    assert_signed_out(browser)
    assert signed_up is not None and not store.exists(signed_up)

    assert allauth_login(browser, "carol", "s1gn-up-Pa55!") == "/whoami/"
    assert_signed_in(browser, "carol")


def test_mfa_totp_activate_then_login_with_second_factor(store: Store, browser: Client) -> None:
    make_user("dave")
    allauth_login(browser, "dave")

    # Adding a second factor asks for the password again (kept in the session), then resumes.
    response = browser.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    response = browser.post(response["Location"], {"password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    response = browser.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    secret = response.context["form"].secret
    record = stored(browser)
    assert record is not None and record.data.get("mfa.totp.secret") == secret

    response = browser.post("/accounts/2fa/totp/activate/", {"code": totp(secret)})
    assert response.status_code == 302, response.content[:500]
    assert Authenticator.objects.filter(user__username="dave", type="totp").exists()

    browser.post("/accounts/logout/")
    assert_signed_out(browser)

    # Password accepted: half-way, the session holds the pending login but no user.
    assert allauth_login(browser, "dave") == "/accounts/2fa/authenticate/"
    assert_signed_out(browser)
    assert stored(browser) is not None

    response = browser.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert response.status_code == 200  # the form again, with an error
    assert_signed_out(browser)

    response = browser.post("/accounts/2fa/authenticate/", {"code": totp(secret)})
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    assert_signed_in(browser, "dave")


@override_settings(USERSESSIONS_TRACK_ACTIVITY=True)
def test_usersessions_list_and_sign_out_other_sessions(store: Store, browser: Client) -> None:
    make_user("erin")
    laptop, phone = browser, Client()
    allauth_login(laptop, "erin")
    allauth_login(phone, "erin")
    assert_signed_in(phone, "erin")
    phone_key = key_in_store(phone)
    assert phone_key is not None and store.exists(phone_key)

    response = laptop.get("/accounts/sessions/")
    assert response.status_code == 200
    assert response.context["session_count"] == 2
    listed = {s.session_key for s in response.context["sessions"]}
    assert listed == {view_key(laptop), view_key(phone)}

    response = laptop.post("/accounts/sessions/")
    assert response.status_code == 302

    # The phone's session is gone from our store, the phone is signed out, the laptop is not.
    assert not store.exists(phone_key)
    assert_signed_out(phone)
    assert_signed_in(laptop, "erin")
    remaining = UserSession.objects.filter(user__username="erin")
    assert [s.session_key for s in remaining] == [view_key(laptop)]
