"""Hostile cookies, shared caches, secrets at rest and data written by an earlier release."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from django.db import connections
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sessionkit import cookies
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.engine import SessionStore
from django_sessionkit.models import Session
from django_sessionkit.stores import get_store
from tests.redis_servers import Standalone
from tests.services import service_missing

pytestmark = pytest.mark.django_db

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "format-1.json").read_text())


def sid_of(client: Client) -> str:
    sid = cookies.unsign(unquote(client.cookies["sessionid"].value), sessionkit_settings.SECRETS)
    assert sid
    return sid


# --- arbitrary cookie headers ----------------------------------------------------


@pytest.fixture
def victim(user: Any) -> dict[str, str]:
    """A signed-in browser, and every form of its id an attacker might try."""
    client = Client()
    client.get("/login/alice/")
    sid = sid_of(client)
    signed = cookies.sign(sid, sessionkit_settings.SECRETS[0])
    return {
        "sid": sid,
        "hash": cookies.hash_id(sid),
        "unsigned": sid,
        "wrong-secret": cookies.encode_value(cookies.sign(sid, "guessed-secret")),
        "bit-flipped": cookies.encode_value(signed[:-2] + ("A" if signed[-2] != "A" else "B")),
        "no-signature": cookies.encode_value(f"s:{sid}."),
        "prefix-only": cookies.encode_value(signed[: len(signed) // 2]),
    }


header_text = st.characters(codec="latin-1", exclude_characters="\r\n\x00")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_cookie_headers_never_500_and_never_reach_another_session(
    victim: dict[str, str], data: st.DataObject
) -> None:
    forms = [v for k, v in victim.items() if k != "sid"]
    pairs = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["sessionid", "sessionid ", " sessionid", "SESSIONID", "csrftoken"])
                | st.text(header_text, max_size=12),
                st.sampled_from(forms) | st.text(header_text, max_size=300),
            ),
            max_size=5,
        )
    )
    separator = data.draw(st.sampled_from(["; ", ";", ",", " ; "]))
    header = separator.join(f"{name}={value}" for name, value in pairs)
    client = Client(HTTP_COOKIE=header)
    response = client.get("/whoami/")
    assert response.status_code == 200
    assert response.json() == {"user": None}
    count = client.get("/count/")
    assert count.status_code == 200 and count.json() == {"views": 1}


# --- caches in front of the site ---------------------------------------------------


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    CACHE_MIDDLEWARE_SECONDS=60,
    MIDDLEWARE=[
        "django.middleware.cache.UpdateCacheMiddleware",
        "django_sessionkit.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.middleware.cache.FetchFromCacheMiddleware",
    ],
)
def test_a_response_that_sets_the_session_cookie_is_never_served_from_a_cache(
    user: Any,
) -> None:
    first = Client()
    response = first.get("/count/")
    assert "sessionid" in response.cookies
    assert "Cookie" in response["Vary"]
    second = Client()
    again = second.get("/count/")
    assert again.json() == {"views": 1}
    assert sid_of(second) != sid_of(first)
    # A signed-in page is not handed to an anonymous visitor either.
    first.get("/login/alice/")
    assert first.get("/whoami/").json() == {"user": "alice"}
    assert Client().get("/whoami/").json() == {"user": None}


def test_vary_cookie_whenever_the_session_was_read_or_set(client: Client) -> None:
    assert "Vary" not in client.get("/plain/")
    assert "Cookie" in client.get("/read/")["Vary"]
    assert "Cookie" in client.get("/count/")["Vary"]
    assert "Cookie" in client.get("/flush/")["Vary"]


def test_ids_rotate_on_login_and_on_privilege_change(client: Client, user: Any) -> None:
    client.get("/count/")
    anonymous = sid_of(client)
    client.get("/login/alice/")
    signed_in = sid_of(client)
    client.get("/password/alice/")  # update_session_auth_hash: a privilege change
    assert len({anonymous, signed_in, sid_of(client)}) == 3
    assert get_store().load(cookies.hash_id(anonymous)) is None
    assert get_store().load(cookies.hash_id(signed_in)) is None


# --- secrets at rest -----------------------------------------------------------------


def forbidden_at_rest(clients: list[Client]) -> list[str]:
    """What must never appear in a dump: the ids, their signed cookies, the secrets."""
    found = []
    for client in clients:
        sid = sid_of(client)
        found += [sid, cookies.sign(sid, sessionkit_settings.SECRETS[0]).split(".")[-1]]
    return found + list(sessionkit_settings.SECRETS)


@pytest.mark.django_db(transaction=True, databases=["default", "pg"])
def test_a_postgresql_dump_holds_no_id_and_nothing_to_forge_a_cookie(
    pg_alias: str, user: Any
) -> None:
    if shutil.which("pg_dump") is None:
        service_missing("pg_dump", "Install it with: apt-get install -y postgresql-client")
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": pg_alias}}):
        clients = [Client() for _ in range(3)]
        for client in clients:
            client.get("/count/")
        clients[0].get("/login/alice/")
        db = connections[pg_alias].settings_dict
        dump = subprocess.run(
            ["pg_dump", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], db["NAME"]],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    assert "django_sessionkit_session" in dump
    assert cookies.hash_id(sid_of(clients[1])) in dump  # the dump really has the sessions
    for secret in forbidden_at_rest(clients):
        assert secret not in dump


def test_a_redis_dump_holds_no_id_and_nothing_to_forge_a_cookie(
    redis_settings: Standalone, user: Any
) -> None:
    clients = [Client() for _ in range(3)]
    for client in clients:
        client.get("/count/")
    clients[0].get("/login/alice/")
    dump = []
    with redis_settings.server.client() as conn:
        for key in conn.scan_iter(count=500):
            dump.append(repr(key))
            kind = conn.type(key)
            if kind == b"hash":
                dump.append(repr(conn.hgetall(key)))
            elif kind == b"zset":
                dump.append(repr(conn.zrange(key, 0, -1, withscores=True)))
            elif kind == b"set":
                dump.append(repr(conn.smembers(key)))
            elif kind == b"string":
                dump.append(repr(conn.get(key)))
    text = "\n".join(dump)
    assert cookies.hash_id(sid_of(clients[1])) in text
    for secret in forbidden_at_rest(clients):
        assert secret not in text


# --- records written by an earlier release ---------------------------------------


def fixture_session() -> SessionStore:
    with override_settings(SESSIONKIT={**sessionkit_settings.raw, "SECRET": FIXTURE["secret"]}):
        session = SessionStore(unquote(FIXTURE["cookie"]))
        data = dict(session.items())
        record = session.record
    assert record is not None
    assert data == FIXTURE["data"]
    return session


def test_a_database_row_from_release_0_1_0_still_loads() -> None:
    row = dict(FIXTURE["database_row"])
    for name in ("expires_at", "created_at", "last_seen"):
        row[name] = datetime.fromisoformat(row[name])
    Session.objects.create(**row)
    session = fixture_session()
    assert session.record is not None and session.record.user_id == "1"
    assert session.record.ip == "192.0.2.10"


def test_a_redis_hash_from_release_0_1_0_still_loads(redis_settings: Standalone) -> None:
    store = get_store()
    key = FIXTURE["database_row"]["key"]
    with redis_settings.server.client() as conn:
        conn.hset(store.session_key(key), mapping=FIXTURE["redis_hash"])  # type: ignore[attr-defined]
    session = fixture_session()
    assert session.record is not None and session.record.user_agent == "Mozilla/5.0 Fixture"
