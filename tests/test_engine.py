"""SessionStore's API, held to Django's SessionBase contract plus express's additions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.test import override_settings
from django.utils import timezone

from django_sessionkit.engine import SessionDataError, SessionStore

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> SessionStore:
    return SessionStore()


def reopen(session: SessionStore) -> SessionStore:
    return SessionStore(session.session_key)


def test_new_session_is_empty(session: SessionStore) -> None:
    assert session.modified is False and session.accessed is False
    assert session.session_key is None and session.is_empty()
    assert dict(session.items()) == {}


def test_dict_api_and_modified_flags(session: SessionStore) -> None:
    session["a"] = 1
    assert session.modified and session.accessed
    assert session.get("a") == 1 and "a" in session and session.has_key("a")
    assert session.setdefault("b", 2) == 2 and session.setdefault("b", 3) == 2
    session.update({"c": 3})
    assert session.pop("c") == 3 and session.pop("missing", "default") == "default"
    assert sorted(session.keys()) == ["a", "b"] and sorted(session.values()) == [1, 2]
    del session["b"]
    assert dict(session.items()) == {"a": 1}


def test_save_then_reopen_by_session_key(session: SessionStore) -> None:
    session["x"] = {"nested": [1]}
    session.save()
    key = session.session_key
    # Made outside a request: the compact cookie, 24 + 16 characters of [A-Za-z0-9_-].
    assert key is not None and re.fullmatch(r"[A-Za-z0-9_-]{40}", key)
    assert key.startswith(session.session_id)
    assert session.exists(key) and session.exists(session.session_id)
    again = reopen(session)
    assert again["x"] == {"nested": [1]}
    assert again.session_key == session.session_id  # only read: the same key a view sees
    again.save()
    assert again.session_key == key  # saved here: a value that works as a cookie


def test_save_must_create_on_existing_raises(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    with pytest.raises(CreateError):
        session.save(must_create=True)


def test_cycle_key_keeps_data_and_kills_the_old_key(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    old = session.session_key
    session.cycle_key()
    assert session.session_key != old
    session.save()
    assert not session.exists(old)
    assert reopen(session)["x"] == 1


def test_cycle_key_keeps_created_at(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    created = session.record.created_at  # type: ignore[union-attr]
    session.cycle_key()
    session.save()
    assert session.record.created_at == created  # type: ignore[union-attr]


def test_flush_deletes(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    key = session.session_key
    session.flush()
    assert session.session_key is None and not session.exists(key)
    assert session.is_empty()


def test_delete_by_key_and_update_after_delete(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    other = reopen(session)
    other["x"]  # loaded
    session.delete()
    other["x"] = 2
    with pytest.raises(UpdateError):
        other.save()
    assert not SessionStore().exists(other.session_key)


def test_unknown_or_tampered_key_loads_as_new() -> None:
    session = SessionStore("s:unknown-id-1234567890.bad-signature")
    assert session.session_key is None
    assert dict(session.items()) == {}


def test_expiry_api(session: SessionStore) -> None:
    assert session.get_expiry_age() == 1209600
    assert session.get_expire_at_browser_close() is False
    session.set_expiry(60)
    assert session.get_expiry_age() == 60
    session.set_expiry(0)
    assert session.get_expire_at_browser_close() is True
    session.set_expiry(timedelta(hours=1))
    assert 3590 <= session.get_expiry_age() <= 3600
    session.set_expiry(None)
    assert session.get_expiry_age() == 1209600
    with override_settings(SESSIONKIT={"COOKIE": {"MAX_AGE": 1800}}):
        assert session.get_expiry_age() == 1800
    with override_settings(SESSIONKIT={"COOKIE": {"MAX_AGE": None}}):
        assert session.get_expire_at_browser_close() is True


def test_stored_expiry_follows_set_expiry(session: SessionStore) -> None:
    session.set_expiry(120)
    session.save()
    record = session.record
    assert record is not None
    assert 115 <= (record.expires_at - timezone.now()).total_seconds() <= 121


def test_unserialisable_value_fails_at_save_naming_the_key(session: SessionStore) -> None:
    session["when"] = timezone.now()
    with pytest.raises(SessionDataError, match=r"'when'.*datetime"):
        session.save()


def test_express_regenerate_reload_touch_destroy(session: SessionStore) -> None:
    session["x"] = 1
    session.save()
    old = session.session_key
    session.regenerate()
    assert session.session_key not in (None, old)
    assert dict(session.items()) == {}
    session.save()
    assert not session.exists(old) and session.exists(session.session_key)

    session["y"] = 2
    session.reload()  # drops the unsaved change
    assert dict(session.items()) == {}

    session.set_expiry(7200)
    session.save()
    before = session.record.expires_at  # type: ignore[union-attr]
    assert session.touch() is True
    assert session.record.expires_at > before  # type: ignore[union-attr]

    key = session.session_key
    session.destroy()
    assert not session.exists(key)
    with pytest.raises(SessionInterrupted):
        session.reload()


@pytest.mark.django_db(transaction=True)
async def test_async_twins() -> None:
    session = SessionStore()
    await session.aset("x", 1)
    await session.asave()
    key = session.session_key
    assert await session.aexists(key)
    again = SessionStore(key)
    assert await again.aget("x") == 1
    await again.acycle_key()
    await again.asave()
    assert not await again.aexists(key)
    await again.areload()
    assert await again.atouch()
    await again.aregenerate()
    await again.asave()
    assert await again.aget_expire_at_browser_close() is False
    new_key = again.session_key
    await again.aflush()
    assert not await again.aexists(new_key)
    await SessionStore.aclear_expired()


def test_incr_never_loses_a_concurrent_count(session: SessionStore) -> None:
    session["views"] = 10
    session["other"] = "x"
    session.save()
    first, second = reopen(session), reopen(session)
    assert first.incr("views") == 11  # both loaded 10
    assert second.incr("views", 5) == 15
    second["theme"] = "dark"
    first.save()
    second.save()  # conflicts with first: its delta is added to the newer 11
    assert second["views"] == 16
    assert dict(reopen(session).items()) == {"views": 16, "other": "x", "theme": "dark"}


def test_incr_rejects_non_numbers(session: SessionStore) -> None:
    session["name"] = "alice"
    with pytest.raises(TypeError, match="'name' holds 'alice'"):
        session.incr("name")
    with pytest.raises(TypeError, match="int or float"):
        session.incr("views", "1")  # type: ignore[arg-type]


def test_assignment_after_incr_wins(session: SessionStore) -> None:
    session["views"] = 3
    session.save()
    other = reopen(session)
    other.incr("views")
    other["views"] = 0  # an explicit reset replaces the pending increment
    concurrent = reopen(session)
    concurrent.incr("views")
    concurrent.save()
    other.save()
    assert reopen(session)["views"] == 0


@pytest.mark.django_db(transaction=True)
async def test_aincr() -> None:
    session = SessionStore()
    assert await session.aincr("views") == 1
    await session.asave()
    assert await SessionStore(session.session_key).aget("views") == 1


@override_settings(SESSIONKIT={"MAX_SIZE": 2000})
def test_an_oversized_session_is_refused_and_the_stored_copy_kept(session: SessionStore) -> None:
    from django_sessionkit.engine import SessionTooLarge

    session["small"] = "x" * 100
    session.save()
    again = reopen(session)
    again["blob"] = "y" * 5000
    with pytest.raises(SessionTooLarge, match=r"MAX_SIZE'\] = 2000.*'blob'"):
        again.save()
    assert dict(reopen(session).items()) == {"small": "x" * 100}
    fresh = SessionStore()
    fresh["blob"] = "z" * 5000
    with pytest.raises(SessionTooLarge):
        fresh.save()
    assert fresh.session_key is None or not fresh.exists(fresh.session_key)
