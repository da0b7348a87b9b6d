"""django-axes: lockout after failed logins, and reset; its access log follows the session."""

from __future__ import annotations

from axes.models import AccessAttempt, AccessLog
from django.core.management import call_command
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import (
    PASSWORD,
    assert_signed_in,
    assert_signed_out,
    django_login,
    make_user,
)


def test_lockout_after_failed_logins_then_reset(store: Store, browser: Client) -> None:
    make_user("frank")
    statuses = [
        browser.post("/auth/login/", {"username": "frank", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]  # AXES_FAILURE_LIMIT = 3

    # Locked out: even the right password is refused, and nobody is signed in.
    response = browser.post("/auth/login/", {"username": "frank", "password": PASSWORD})
    assert response.status_code == 429
    assert_signed_out(browser)
    assert AccessAttempt.objects.get(username="frank").failures_since_start >= 3

    call_command("axes_reset_username", "frank", verbosity=0)
    assert not AccessAttempt.objects.filter(username="frank").exists()
    django_login(browser, "frank")
    assert_signed_in(browser, "frank")

    # axes keys its access log by a hash of session_key: logout finds the login's entry.
    log = AccessLog.objects.get(username="frank")
    assert log.logout_time is None and log.session_hash
    response = browser.post("/auth/logout/")
    assert response.status_code == 302
    assert_signed_out(browser)
    log.refresh_from_db()
    assert log.logout_time is not None, "logout did not find the login's session hash"
