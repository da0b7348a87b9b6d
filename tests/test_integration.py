"""Everything that uses request.session keeps working: auth, messages, CSRF in the session."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client, override_settings

from django_sessionkit import cookies
from django_sessionkit.models import Session
from django_sessionkit.stores import get_store

pytestmark = pytest.mark.django_db


def sid_of(client: Client) -> str:
    sid = cookies.unsign(
        unquote(client.cookies["sessionid"].value), cookies.sessionkit_settings.SECRETS
    )
    assert sid
    return sid


def alive(sid: str) -> bool:
    return get_store().load(cookies.hash_id(sid)) is not None


def test_login_rotates_the_id_and_kills_the_pre_login_one(client: Client, user: object) -> None:
    client.get("/count/")
    before = sid_of(client)
    assert client.get("/login/alice/").status_code == 200
    after = sid_of(client)
    assert after != before
    assert not alive(before)
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert client.get("/count/").json() == {"views": 2}  # data kept across the login
    row = Session.objects.get()
    assert row.user_id == str(user.pk)  # type: ignore[attr-defined]


def test_login_as_someone_else_flushes(client: Client, user: object, other_user: object) -> None:
    client.get("/login/alice/")
    alice_sid = sid_of(client)
    client.get("/login/bob/")
    assert not alive(alice_sid)
    assert client.get("/whoami/").json() == {"user": "bob"}
    assert Session.objects.get().user_id == str(other_user.pk)  # type: ignore[attr-defined]


def test_logout_ends_the_session(client: Client, user: object) -> None:
    client.get("/login/alice/")
    sid = sid_of(client)
    response = client.get("/logout/")
    assert "Max-Age=0" in response.cookies["sessionid"].output()
    assert not alive(sid)
    # The old cookie, replayed, is anonymous.
    replay = Client()
    replay.cookies["sessionid"] = cookies.encode_value(cookies.id_to_cookie(sid))
    assert replay.get("/whoami/").json() == {"user": None}


def test_update_session_auth_hash_keeps_this_session_signed_in(
    client: Client, user: object
) -> None:
    other_device = Client()
    client.get("/login/alice/")
    other_device.get("/login/alice/")
    client.get("/password/alice/")
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert other_device.get("/whoami/").json() == {"user": None}


def test_test_client_login_and_session_property(client: Client, user: object) -> None:
    assert client.login(username="alice", password="correct horse battery staple")
    assert client.get("/whoami/").json() == {"user": "alice"}
    assert client.session[SESSION_KEY] == str(user.pk)  # type: ignore[attr-defined]
    client.force_login(user)  # type: ignore[arg-type]
    assert client.get("/whoami/").json() == {"user": "alice"}
    client.logout()
    assert client.get("/whoami/").json() == {"user": None}


@override_settings(MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage")
def test_messages_in_the_session(client: Client) -> None:
    client.get("/message/")
    assert client.get("/messages/").json() == {"messages": ["saved!"]}
    assert client.get("/messages/").json() == {"messages": []}


@override_settings(CSRF_USE_SESSIONS=True)
def test_csrf_token_in_the_session() -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.get("/csrf/").content.decode()
    assert "csrftoken" not in client.cookies
    assert client.post("/csrf/", {"csrfmiddlewaretoken": token}).status_code == 200
    assert client.post("/csrf/", {"csrfmiddlewaretoken": "x" * 64}).status_code == 403


def test_admin_login_works(client: Client, admin_user: object) -> None:
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": "password"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_clearsessions_purges_expired_rows(client: Client) -> None:
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    client.get("/count/")
    Client().get("/count/")
    Session.objects.filter(key=cookies.hash_id(sid_of(client))).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("clearsessions")
    assert Session.objects.count() == 1


def test_migrations_match_the_models() -> None:
    from django.core.management import call_command

    call_command("makemigrations", "django_sessionkit", "--check", "--dry-run", verbosity=0)
