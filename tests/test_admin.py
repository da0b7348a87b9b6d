"""The Sessions admin, on DatabaseStore and on RedisStore: listing, filters, search, paging,
masking, permissions, and revoking that really ends sessions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone

from django_sessionkit import cookies
from django_sessionkit.admin_views import ip_search
from django_sessionkit.stores.base import SessionRecord, Store
from django_sessionkit.stores.database import DatabaseStore
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
LIST = "/admin/django_sessionkit/session/"
REVOKE = LIST + "revoke/"


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


def sid_of(client: Client) -> str:
    # Either cookie form: s:<id>.<sig> from the middleware, compact from force_login().
    sid = cookies.cookie_to_id(unquote(client.cookies["sessionid"].value))
    assert sid
    return sid


def key_of(client: Client) -> str:
    return cookies.hash_id(sid_of(client))


def browser(username: str | None = None, *, ip: str = "10.0.0.1", ua: str = FIREFOX) -> Client:
    """A test client that has a session (signed in as ``username`` when given)."""
    client = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=ua)
    if username is None:
        client.get("/count/")
    else:
        user(username)
        assert client.get(f"/login/{username}/").status_code == 200
    return client


def user(username: str) -> Any:
    """The user called ``username``, created once (re-saving a password would end sessions)."""
    from django.contrib.auth import get_user_model

    found = get_user_model().objects.filter(username=username).first()
    return found or UserFactory(username=username)


def whoami(client: Client) -> str | None:
    user: str | None = client.get("/whoami/").json()["user"]
    return user


def stored(store: Store, *, user_id: str | None = None, **fields: Any) -> str:
    """Put a session straight into the store; return its key."""
    now = timezone.now()
    values: dict[str, Any] = {
        "data": {"_auth_user_id": user_id} if user_id else {"views": 1},
        "expires_at": now + timedelta(days=1),
        "created_at": now - timedelta(minutes=5),
        "last_seen": now,
        "user_id": user_id,
        "ip": "192.0.2.7",
        "user_agent": FIREFOX,
    }
    values.update(fields)
    key = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    store.save(key, SessionRecord(**values), must_create=True)
    return key


@pytest.fixture
def admin(admin_user: Any) -> Client:
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_USER_AGENT=FIREFOX)
    client.force_login(admin_user)
    return client


def staff(*perms: str) -> Client:
    user = UserFactory(username="staff-" + "-".join(perms or ("none",)), is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def confirm(client: Client, **data: Any) -> Any:
    return client.post(REVOKE, {**data, "confirm": "yes"}, follow=True)


# --- listing ----------------------------------------------------------------------


def test_index_has_a_sessions_entry(store: Store, admin: Client) -> None:
    response = admin.get("/admin/")
    assert response.status_code == 200
    assert LIST in response.content.decode()


def test_list_shows_who_where_and_which_browser(store: Store, admin: Client) -> None:
    alice = browser("alice", ip="10.1.1.1", ua=IPHONE)
    anonymous = browser(None, ip="10.2.2.2")
    page = admin.get(LIST).content.decode()
    alice_pk = user("alice").pk
    assert f'href="/admin/auth/user/{alice_pk}/change/"' in page
    assert "10.1.1.1" in page and "10.2.2.2" in page
    assert "iPhone" in page and "Mobile Safari 17 on iOS 17.1" in page
    assert "Firefox 133 on Windows 10" in page
    assert "anonymous" in page
    assert page.count("this is you") == 1
    for client in (alice, anonymous, admin):
        assert key_of(client)[:12] in page
        assert sid_of(client) not in page  # the raw id is never shown
        assert key_of(client) not in page  # nor the whole store key


def test_this_is_you_marks_the_admins_own_row(store: Store, admin: Client) -> None:
    browser("alice")
    response = admin.get(LIST)
    own = [row for row in response.context["rows"] if row.is_current]
    assert [row.ref for row in own] == [key_of(admin)[:12]]


def test_filters_by_who_and_activity(store: Store, admin: Client) -> None:
    browser("alice")
    browser(None, ip="10.3.3.3")
    old = stored(store, last_seen=timezone.now() - timedelta(hours=3))
    refs = lambda query: {r.ref for r in admin.get(LIST + query).context["rows"]}  # noqa: E731
    anonymous = refs("?who=anonymous")
    assert old[:12] in anonymous and all(
        r.user_id is None for r in admin.get(LIST + "?who=anonymous").context["rows"]
    )
    signed_in = admin.get(LIST + "?who=signed-in").context["rows"]
    assert {r.user.username for r in signed_in} == {"alice", "admin"}
    assert old[:12] not in refs("?active=hour")
    assert old[:12] in refs("?active=day")
    assert old[:12] not in refs("?who=anonymous&active=hour")


def test_search_by_username_email_and_ip(store: Store, admin: Client) -> None:
    alice = browser("alice", ip="10.1.1.1")
    bob = browser("bob", ip="172.16.0.4")
    refs = lambda q: {r.ref for r in admin.get(LIST, {"q": q}).context["rows"]}  # noqa: E731
    assert refs("alic") == {key_of(alice)[:12]}
    assert refs("bob@example.test") == {key_of(bob)[:12]}
    assert refs("172.16.") == {key_of(bob)[:12]}
    assert refs("10.1.1.1") == {key_of(alice)[:12]}
    assert refs("nobody-like-this") == set()
    # "(all)" link: one user's sessions, with an exact count from the store.
    response = admin.get(LIST, {"user": str(user("alice").pk)})
    assert {r.ref for r in response.context["rows"]} == {key_of(alice)[:12]}
    assert response.context["listing"].total == 1


def spy_on_list(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``store.list`` call from now on."""
    asked: list[dict[str, Any]] = []
    real_list = store.list

    def spy(**kwargs: Any) -> Any:
        asked.append(kwargs)
        return real_list(**kwargs)

    monkeypatch.setattr(store, "list", spy)
    return asked


def test_paging_asks_the_store_for_one_page_after_a_cursor(
    store: Store, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = timezone.now()
    for i in range(119):
        stored(store, last_seen=now - timedelta(seconds=i + 1))
    asked = spy_on_list(store, monkeypatch)
    seen: list[str] = []
    pages: list[list[str]] = []
    url: str | None = LIST
    while url:
        response = admin.get(url if url.startswith("/") else LIST + url)
        pages.append([row.ref for row in response.context["rows"]])
        seen += pages[-1]
        url = response.context["next_url"]
        assert response.context["listing"].items, "a Next link never leads to an empty page"
    assert len(pages) == 3 and len(seen) == 120 == len(set(seen))  # 119 + the admin's own
    assert all(call["limit"] <= 51 for call in asked)  # a page, and one row to peek
    assert [call["after"] is None for call in asked] == [True, False, False]
    page = response.content.decode()
    assert "Sessions 101\u2013120" in page
    assert all(key_of(admin) not in link for link in (page, *map(str, asked)))
    # Previous, then Previous again: the same pages as on the way down.
    back = admin.get(LIST + response.context["prev_url"])
    assert [row.ref for row in back.context["rows"]] == pages[1]
    assert "Sessions 51\u2013100" in back.content.decode()
    first = admin.get(LIST + back.context["prev_url"])
    assert [row.ref for row in first.context["rows"]] == pages[0]
    assert first.context["prev_url"] is None


def test_filtered_pages_go_on_after_a_cursor(store: Store, admin: Client) -> None:
    now = timezone.now()
    for i in range(60):
        stored(store, last_seen=now - timedelta(seconds=i + 1))
    first = admin.get(LIST + "?who=anonymous")
    assert len(first.context["rows"]) == 50
    second = admin.get(LIST + first.context["next_url"])
    assert len(second.context["rows"]) == 10
    assert second.context["next_url"] is None
    assert not {r.ref for r in first.context["rows"]} & {r.ref for r in second.context["rows"]}
    assert all(r.user_id is None for r in second.context["rows"])


def test_a_rare_address_is_one_indexed_lookup(
    store: Store, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = timezone.now()
    for i in range(150):  # newer sessions from elsewhere, and two old ones from 192.0.2.77
        stored(store, last_seen=now - timedelta(seconds=i + 1), ip=f"10.0.{i // 100}.{i}")
    rare = [stored(store, last_seen=now - timedelta(days=1, seconds=i)) for i in range(2)]
    signed_in = stored(store, user_id=str(user("dora").pk), ip="192.0.2.77")
    asked = spy_on_list(store, monkeypatch)
    response = admin.get(LIST, {"q": "192.0.2.7"})
    assert [r.ref for r in response.context["rows"]] == [key[:12] for key in rare]
    assert len(asked) == 1 and str(asked[0]["ip"]) == "192.0.2.7/32"
    refs = lambda query: [r.ref for r in admin.get(LIST + query).context["rows"]]  # noqa: E731
    assert refs("?q=192.0.2.77&who=signed-in") == [signed_in[:12]]
    assert refs("?q=192.0.2.") == [signed_in[:12]] + [key[:12] for key in rare]
    assert len(refs("?q=10.0.1.")) == 50  # 10.0.1.0/24
    assert len(refs("?q=10.0.0.0/23")) == 50


def test_an_ip_search_a_store_cannot_answer_says_so(store: Store, admin: Client) -> None:
    response = admin.get(LIST, {"q": "2001:0:"})  # 2001::/32: a zero group
    assert response.status_code == 200
    # Addresses are text on SQLite and MySQL/MariaDB, inet on PostgreSQL.
    as_text = isinstance(store, DatabaseStore) and store.alias in ("default", "mysql")
    assert bool(response.context["listing"].error) == as_text
    if as_text:
        assert "cannot be answered here" in response.content.decode()


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("192.168.", "192.168.0.0/16"),
        ("192.168", "192.168.0.0/16"),
        ("10.", "10.0.0.0/8"),
        ("10.1.2", "10.1.2.0/24"),
        ("10.1.2.", "10.1.2.0/24"),
        ("10.1.2.3", "10.1.2.3/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("2001:db8:", "2001:db8::/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:db8::/48", "2001:db8::/48"),
        ("10", None),
        ("300.1.", None),
        ("alice", None),
        ("bob@example.test", None),
    ],
)
def test_what_the_search_box_takes_for_an_ip(text: str, network: str | None) -> None:
    found = ip_search(text)
    assert (None if found is None else str(found)) == network


# --- detail -------------------------------------------------------------------------


def test_detail_masks_sensitive_keys(store: Store, admin: Client) -> None:
    key = stored(
        store,
        user_id=str(user("carol").pk),
        data={
            "_auth_user_hash": "f" * 64,
            "reset_password": "hunter2",
            "profile": {"api_token": "tok-123", "theme": "dark"},
            "cart": [1, 2],
        },
    )
    response = admin.get(f"{LIST}{key[:12]}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "f" * 64 not in page and "hunter2" not in page and "tok-123" not in page
    assert "&quot;theme&quot;: &quot;dark&quot;" in page and "&quot;cart&quot;" in page
    assert key not in page and key[:12] in page
    with override_settings(SESSIONKIT={**store_settings(), "ADMIN_SENSITIVE_KEYS": ["cart"]}):
        page = admin.get(f"{LIST}{key[:12]}/").content.decode()
    assert "hunter2" in page  # the list replaces the defaults…
    assert "f" * 64 not in page  # …but the auth hash is always masked
    assert "&quot;cart&quot;: &quot;********&quot;" in page


def store_settings() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.SESSIONKIT)


def test_detail_of_unknown_or_malformed_ref_is_404(store: Store, admin: Client) -> None:
    assert admin.get(f"{LIST}{'0' * 12}/").status_code == 404
    assert admin.get(f"{LIST}not-a-ref/").status_code == 404


def test_detail_found_without_hints(store: Store, admin: Client) -> None:
    key = stored(store)
    assert admin.get(f"{LIST}{key[:12]}/").status_code == 200


def test_detail_link_finds_the_session_where_the_list_showed_it(
    store: Store, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = timezone.now()
    keys = [stored(store, last_seen=now - timedelta(seconds=i + 1)) for i in range(80)]
    page = admin.get(LIST + "?who=anonymous")
    page = admin.get(LIST + page.context["next_url"])
    row = page.context["rows"][-1]
    assert row.ref in {key[:12] for key in keys}
    link = f"{LIST}{row.ref}/?s={row.seen}"
    assert link in page.content.decode()

    def no_scan(**kwargs: Any) -> Any:
        raise AssertionError("the hint should have found it")

    monkeypatch.setattr(store, "iter_all", no_scan)
    response = admin.get(link)
    assert response.status_code == 200 and response.context["row"].ref == row.ref


# --- revoking ---------------------------------------------------------------------


def test_revoke_selected_confirms_first_then_really_ends(store: Store, admin: Client) -> None:
    alice = browser("alice")
    bob = browser("bob")
    alice_key = key_of(alice)
    ref = alice_key[:12]
    response = admin.post(REVOKE, {"action": "selected", "session": [ref]})
    assert response.status_code == 200 and "Are you sure?" in response.content.decode()
    assert whoami(alice) == "alice"  # nothing ended yet
    response = confirm(admin, action="selected", session=[ref])
    assert "1 session was ended." in response.content.decode()
    assert whoami(alice) is None  # that browser's next request is anonymous
    assert store.load(alice_key) is None
    assert whoami(bob) == "bob"


def test_revoke_every_session_of_a_user(store: Store, admin: Client) -> None:
    phone, laptop = browser("alice", ua=IPHONE), browser("alice")
    bob = browser("bob")
    alice_pk = str(user("alice").pk)
    confirm_page = admin.post(REVOKE, {"action": "user", "user": alice_pk}).content.decode()
    assert "2 live" in confirm_page
    response = confirm(admin, action="user", user=alice_pk)
    assert "2 sessions were ended." in response.content.decode()
    assert whoami(phone) is None and whoami(laptop) is None and whoami(bob) == "bob"


def test_revoke_all_except_own(
    store: Store, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = [browser("alice"), browser("bob"), browser(None)]
    for _ in range(3):
        stored(store)
    calls: list[str | None] = []
    real_delete_all = store.delete_all

    def spy(*, keep: str | None = None) -> int:
        calls.append(keep)
        return real_delete_all(keep=keep)

    monkeypatch.setattr(store, "delete_all", spy)
    response = confirm(admin, action="others")
    assert calls == [key_of(admin)]  # the store's own delete, in one call
    assert "6 sessions were ended." in response.content.decode()
    assert all(whoami(c) is None for c in clients[:2])
    assert whoami(admin) == "admin"
    assert [key for key, _ in store.list()] == [key_of(admin)]


def test_revoking_own_session_signs_the_admin_out(store: Store, admin: Client) -> None:
    response = confirm(admin, action="selected", session=[key_of(admin)[:12]])
    assert response.redirect_chain[0][0].startswith("/admin/login/")
    assert whoami(admin) is None


def test_revoke_needs_post_and_csrf(store: Store, admin_user: Any) -> None:
    alice = browser("alice")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    data = {"action": "selected", "session": key_of(alice)[:12], "confirm": "yes"}
    assert client.post(REVOKE, data).status_code == 403
    assert client.get(REVOKE, data).status_code == 302
    assert whoami(alice) == "alice"


def test_unknown_action_or_refs_end_nothing(store: Store, admin: Client) -> None:
    alice = browser("alice")
    confirm(admin, action="everything")
    confirm(admin, action="selected", session=["zz", "0" * 12])
    assert whoami(alice) == "alice"


# --- permissions -----------------------------------------------------------------------


def test_non_staff_get_the_admin_login(store: Store) -> None:
    client = browser("mallory")
    assert client.get(LIST).status_code == 302
    assert client.post(REVOKE, {"action": "others", "confirm": "yes"}).status_code == 302
    assert whoami(client) == "mallory"


def test_staff_without_permission_is_refused(store: Store) -> None:
    alice = browser("alice")
    client = staff()
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{key_of(alice)[:12]}/").status_code == 403
    assert client.post(REVOKE, {"action": "others", "confirm": "yes"}).status_code == 403
    assert whoami(alice) == "alice"


def test_view_permission_sees_but_cannot_revoke(store: Store) -> None:
    alice = browser("alice")
    client = staff("view_session")
    page = client.get(LIST).content.decode()
    assert key_of(alice)[:12] in page
    assert 'name="session"' not in page and "except yours" not in page
    data = {"action": "selected", "session": key_of(alice)[:12], "confirm": "yes"}
    assert client.post(REVOKE, data).status_code == 403
    assert whoami(alice) == "alice"


def test_delete_permission_can_revoke(store: Store) -> None:
    alice = browser("alice")
    client = staff("view_session", "delete_session")
    response = client.post(
        REVOKE,
        {"action": "selected", "session": key_of(alice)[:12], "confirm": "yes"},
        follow=True,
    )
    assert "1 session was ended." in response.content.decode()
    assert whoami(alice) is None
