"""'Where you're signed in': a user's own sessions only, on DatabaseStore and RedisStore."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.test_admin import IPHONE, browser, key_of, store, user, whoami  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("store")]

PAGE = "/account/sessions/"


def refs(client: Client) -> set[str]:
    return {row.ref for row in client.get(PAGE).context["sessions"]}


def test_login_required() -> None:
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/account/sessions/")
    assert Client().post(PAGE + "end-others/").status_code == 302


def test_lists_only_own_sessions_current_first() -> None:
    laptop, phone = browser("alice"), browser("alice", ip="10.5.5.5", ua=IPHONE)
    bob = browser("bob")
    response = phone.get(PAGE)
    sessions = response.context["sessions"]
    assert sessions[0].ref == key_of(phone)[:12]
    assert sessions[0].is_current and not sessions[1].is_current
    assert {s.ref for s in sessions} == {key_of(laptop)[:12], key_of(phone)[:12]}
    page = response.content.decode()
    assert key_of(bob)[:12] not in page
    assert "This device" in page and "iPhone" in page and "10.5.5.5" in page
    assert "<script" not in page


def test_sign_out_another_device() -> None:
    laptop, phone = browser("alice"), browser("alice", ua=IPHONE)
    response = laptop.post(PAGE + "end/", {"session": key_of(phone)[:12]}, follow=True)
    assert "That session was signed out." in response.content.decode()
    assert whoami(phone) is None
    assert whoami(laptop) == "alice"


def test_signing_out_the_current_one_logs_out() -> None:
    laptop, phone = browser("alice"), browser("alice", ua=IPHONE)
    response = laptop.post(PAGE + "end/", {"session": key_of(laptop)[:12]})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert whoami(laptop) is None
    assert whoami(phone) == "alice"


def test_sign_out_all_others() -> None:
    laptop, phone, tablet = browser("alice"), browser("alice"), browser("alice")
    bob = browser("bob")
    response = laptop.post(PAGE + "end-others/", follow=True)
    assert "2 other sessions were signed out." in response.content.decode()
    assert whoami(phone) is None and whoami(tablet) is None
    assert whoami(laptop) == "alice" and whoami(bob) == "bob"
    assert refs(laptop) == {key_of(laptop)[:12]}


def test_forged_post_cannot_end_someone_elses_session() -> None:
    alice, bob = browser("alice"), browser("bob")
    bob_ref = key_of(bob)[:12]
    assert bob_ref not in refs(alice)
    assert alice.post(PAGE + "end/", {"session": bob_ref}).status_code == 404
    assert alice.post(PAGE + "end/", {"session": ""}).status_code == 404
    alice.post(PAGE + "end-others/")
    assert whoami(bob) == "bob"
    assert whoami(alice) == "alice"


def test_needs_post_and_csrf() -> None:
    user("alice")
    laptop, phone = Client(enforce_csrf_checks=True), browser("alice")
    laptop.get("/login/alice/")
    assert laptop.get(PAGE + "end-others/").status_code == 405
    assert laptop.post(PAGE + "end-others/").status_code == 403
    assert laptop.post(PAGE + "end/", {"session": key_of(phone)[:12]}).status_code == 403
    assert whoami(phone) == "alice"
