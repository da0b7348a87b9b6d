"""One session, one ``session_key``, wherever a project's code or tests look at it.

With Django's own engines ``request.session.session_key`` in a view, the test
client's ``client.session.session_key`` and Channels' ``scope["session"].session_key``
are one string for one session, and projects rely on it: a test finds the cart
row a view wrote with ``CartItem.objects.get(session_key=self.client.session.session_key)``,
a consumer keys its rows the way the HTTP views keyed theirs.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from django_sessionkit.stores.base import Store
from tests.compat.helpers import cookie_value, django_login, make_user, talk, view_key
from tests.compat.shop.models import CartItem


def test_the_test_clients_session_key_is_the_views(store: Store, browser: Client) -> None:
    assert browser.post("/shop/add/mug/").status_code == 200
    in_view = view_key(browser)
    assert in_view is not None
    assert browser.session.session_key == in_view
    assert CartItem.objects.get(session_key=browser.session.session_key).product == "mug"

    make_user("olga")
    django_login(browser, "olga")
    assert browser.session.session_key == view_key(browser)


@pytest.mark.django_db(transaction=True)  # Channels: see test_channels.py
def test_a_consumers_session_key_is_the_views(store: Store, browser: Client) -> None:
    make_user("olga")
    django_login(browser, "olga")
    hello, _saved = talk(f"{settings.SESSION_COOKIE_NAME}={cookie_value(browser)}")
    assert hello["user"] == "olga"
    assert hello["session_key"] == view_key(browser)
