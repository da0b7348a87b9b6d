"""A real browser (Playwright driving Debian's Chromium) through the admin and the user page.

Needs ``apt-get install -y --no-install-recommends chromium`` and ``pip install playwright``
(never ``playwright install``). Without them the test skips, and fails under CI=true.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import UserFactory
from tests.services import service_missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
HOW = (
    "Install Debian's Chromium with: apt-get install -y --no-install-recommends chromium; "
    "and Playwright with: pip install playwright (never run 'playwright install')."
)


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        service_missing(f"Chromium at {CHROMIUM}", HOW)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("The playwright Python package", HOW)
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the
    # test (and of live_server's setup) are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_admin_revokes_and_user_signs_out_other_device(
    transactional_db: None, live_server: Any, chromium: Any, admin_user: Any
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    UserFactory(username="alice")
    UserFactory(username="bob")
    ARTIFACTS.mkdir(exist_ok=True)

    alice = chromium.new_context()
    bob = chromium.new_context()
    bob_phone = chromium.new_context(user_agent=IPHONE)
    admin = chromium.new_context(viewport={"width": 1600, "height": 800})
    pages = {
        name: ctx.new_page()
        for name, ctx in [
            ("alice", alice),
            ("bob", bob),
            ("bob_phone", bob_phone),
            ("admin", admin),
        ]
    }
    for name, who in [("alice", "alice"), ("bob", "bob"), ("bob_phone", "bob")]:
        pages[name].goto(f"{base}/login/{who}/")
        expect(pages[name].locator("body")).to_have_text(f"hello {who}")

    # The admin signs in through the login form and sees everybody's sessions.
    page = pages["admin"]
    page.goto(f"{base}/admin/login/?next=/admin/django_sessionkit/session/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    expect(page.locator("#result_list")).to_be_visible()
    rows = page.locator("tr.sessionkit-row")
    expect(rows).to_have_count(4)
    expect(page.locator("#result_list")).to_contain_text("alice")
    expect(page.locator("#result_list")).to_contain_text("bob")
    expect(page.locator("tr.sessionkit-current")).to_contain_text("this is you")
    page.screenshot(path=str(ARTIFACTS / "admin_session_list.png"), full_page=True)

    # Revoke alice's session: select, Go, confirm.
    alice_row = page.locator("tr.sessionkit-row", has=page.get_by_role("link", name="alice"))
    alice_row.locator("input.action-select").check()
    page.click("#changelist-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Are you sure?")
    page.screenshot(path=str(ARTIFACTS / "admin_revoke_confirm.png"), full_page=True)
    page.click("input[type=submit][value^='Yes']")
    expect(page.locator("ul.messagelist")).to_contain_text("1 session was ended.")
    expect(page.locator("tr.sessionkit-row")).to_have_count(3)

    # Alice's browser is signed out on its next page load.
    pages["alice"].goto(f"{base}/account/sessions/")
    assert re.search(r"/accounts/login/\?next=/account/sessions/$", pages["alice"].url)
    pages["alice"].goto(f"{base}/whoami/")
    assert '"user": null' in pages["alice"].content()

    # Bob's page shows both his devices and signs out the other one.
    bob_page = pages["bob"]
    bob_page.goto(f"{base}/account/sessions/")
    expect(bob_page.locator("tr.sessionkit-session")).to_have_count(2)
    expect(bob_page.locator("tr.current")).to_contain_text("This device")
    expect(bob_page.locator("table")).to_contain_text("iPhone")
    bob_page.screenshot(path=str(ARTIFACTS / "user_sessions.png"), full_page=True)
    bob_page.click("button.sessionkit-end-others")
    expect(bob_page.locator("ul.messages")).to_contain_text("1 other session was signed out.")
    expect(bob_page.locator("tr.sessionkit-session")).to_have_count(1)
    bob_page.screenshot(path=str(ARTIFACTS / "user_sessions_after.png"), full_page=True)

    pages["bob_phone"].goto(f"{base}/whoami/")
    assert '"user": null' in pages["bob_phone"].content()
    pages["bob"].goto(f"{base}/whoami/")
    assert '"user": "bob"' in pages["bob"].content()

    for ctx in (alice, bob, bob_phone, admin):
        ctx.close()
