"""The SESSIONKIT values are computed once and forgotten whenever a Django setting changes."""

from __future__ import annotations

from django.test import override_settings

from django_sessionkit.conf import sessionkit_settings as conf
from django_sessionkit.stores import get_store


def test_a_value_is_computed_once_and_kept() -> None:
    assert conf.STORE is conf.STORE  # the same dict: nothing re-read per request


def test_override_settings_is_seen_at_once() -> None:
    before = conf.NAME
    with override_settings(SESSIONKIT={"NAME": "connect.sid", "SECRET": ["new", "old"]}):
        assert conf.NAME == "connect.sid"
        assert conf.SECRETS == ["new", "old"]
    assert before == conf.NAME


def test_django_fallbacks_follow_their_settings() -> None:
    with override_settings(SESSIONKIT={}, SECRET_KEY="k1", SECRET_KEY_FALLBACKS=["k0"]):
        assert conf.SECRETS == ["k1", "k0"]
        with override_settings(SESSION_COOKIE_NAME="other", SECRET_KEY="k2"):
            assert conf.NAME == "other"
            assert conf.SECRETS == ["k2", "k0"]
        assert conf.SECRETS == ["k1", "k0"]


def test_the_store_follows_a_changed_store_setting(settings) -> None:  # type: ignore[no-untyped-def]
    first = get_store()
    assert get_store() is first
    settings.SESSIONKIT = {"STORE": {"LOCATION": "default"}}
    assert get_store() is not first
