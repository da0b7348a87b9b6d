"""A cart keyed by session_key (CharField(max_length=40)), merged into the user's at login."""

from __future__ import annotations

import re

from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import django_login, make_user, view_key
from tests.compat.shop.models import CART_KEY, CartItem


def rows() -> set[tuple[str | None, str, str, int]]:
    return {
        (
            item.user.get_username() if item.user else None,
            item.session_key,
            item.product,
            item.quantity,
        )
        for item in CartItem.objects.select_related("user")
    }


def test_anonymous_cart_is_merged_into_the_users_cart_at_login(
    store: Store, browser: Client
) -> None:
    user = make_user("noah")
    CartItem.objects.create(user=user, product="mug", quantity=2)  # from an earlier visit

    for product in ("mug", "tea", "tea"):
        assert browser.post(f"/shop/add/{product}/").status_code == 200
    key = view_key(browser)
    assert key is not None and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", key), key
    someone_else = Client()
    assert someone_else.post("/shop/add/tea/").status_code == 200
    other_key = view_key(someone_else)
    assert other_key not in (None, key)

    # On PostgreSQL, where varchar(40) is enforced; the key is stable across requests.
    assert rows() == {
        ("noah", "", "mug", 2),
        (None, key, "mug", 1),
        (None, key, "tea", 2),
        (None, other_key, "tea", 1),
    }
    assert browser.get("/shop/cart/").json() == {"mug": 1, "tea": 2}

    django_login(browser, "noah")  # user_logged_in merges the cart
    assert rows() == {
        ("noah", "", "mug", 3),
        ("noah", "", "tea", 2),
        (None, other_key, "tea", 1),
    }
    assert browser.get("/shop/cart/").json() == {"mug": 3, "tea": 2}
    assert CART_KEY not in browser.get("/session/").json()["data"]
    assert view_key(browser) not in (None, key)  # login gave the session a new key
