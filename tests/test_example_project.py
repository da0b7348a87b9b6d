"""The example project's tutorial flows, through the test client, on its own settings."""

from __future__ import annotations

import io
import os
import re
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from django_sessionkit import cookies
from django_sessionkit.conf import COOKIE_KEYS, KEYS
from django_sessionkit.models import Session
from django_sessionkit.stores import get_store
from example_project import settings as example
from example_project.tutorial import views

pytestmark = pytest.mark.django_db

EXAMPLE_DIR = Path(example.__file__).resolve().parent
DATABASE_STORE = {"BACKEND": "django_sessionkit.stores.database.DatabaseStore"}


@pytest.fixture(autouse=True)
def example_site() -> Iterator[None]:
    with override_settings(
        INSTALLED_APPS=example.INSTALLED_APPS,
        MIDDLEWARE=example.MIDDLEWARE,
        TEMPLATES=example.TEMPLATES,
        ROOT_URLCONF=example.ROOT_URLCONF,
        LOGIN_URL=example.LOGIN_URL,
        LOGIN_REDIRECT_URL=example.LOGIN_REDIRECT_URL,
        # The example's own dict, on the database whatever SESSIONKIT_REDIS_URL says.
        SESSIONKIT={**example.SESSIONKIT, "STORE": DATABASE_STORE},
    ):
        yield


@pytest.fixture
def demo_user() -> None:
    call_command("demouser", stdout=io.StringIO())


def sid_of(client: Client) -> str:
    sid = cookies.unsign(
        unquote(client.cookies["sessionid"].value), cookies.sessionkit_settings.SECRETS
    )
    assert sid
    return sid


def alive(sid: str) -> bool:
    return get_store().load(cookies.hash_id(sid)) is not None


def set_cookie(response: object) -> str:
    morsel = response.cookies.get("sessionid")  # type: ignore[attr-defined]
    return "" if morsel is None else str(morsel.output(header=""))


def log_in(client: Client) -> object:
    return client.post("/login/", {"username": "demo", "password": "demo"})


def test_visit_counter(client: Client) -> None:
    first = client.get("/")
    assert "You visited this page 1 time." in first.content.decode()
    assert re.search(r"sessionid=s%3A[\w-]{24}\.", set_cookie(first))
    assert "Max-Age=1800" in set_cookie(first)  # the example's 30-minute maxAge
    assert "You visited this page 2 times." in client.get("/").content.decode()
    assert "You visited this page 1 time." in Client().get("/").content.decode()


def test_who_am_i_without_a_session_saves_nothing(client: Client) -> None:
    response = client.get("/whoami/")
    assert "You are not signed in." in response.content.decode()
    assert "You have no session yet" in response.content.decode()
    assert set_cookie(response) == ""
    assert Session.objects.count() == 0


def test_login_rotates_the_id_and_the_old_id_is_dead(client: Client, demo_user: None) -> None:
    client.get("/")
    before = sid_of(client)
    assert 'name="password"' in client.get("/login/").content.decode()

    response = log_in(client)
    assert response.status_code == 302 and response["Location"] == "/whoami/"
    after = sid_of(client)
    assert after != before
    assert not alive(before) and alive(after)

    page = client.get("/whoami/").content.decode()
    assert "You are <strong>demo</strong>." in page
    assert "<code>views</code></th><td><code>1</code>" in page  # data kept across the login
    assert "_auth_user_id" in page
    assert cookies.hash_id(after)[:12] in page and after not in page

    replay = Client()  # someone holding the pre-login cookie
    replay.cookies["sessionid"] = cookies.encode_value(cookies.id_to_cookie(before))
    page = replay.get("/whoami/").content.decode()
    assert "You are not signed in." in page and "You have no session yet" in page


def test_a_wrong_password_keeps_the_session(client: Client, demo_user: None) -> None:
    client.get("/")
    before = sid_of(client)
    response = client.post("/login/", {"username": "demo", "password": "wrong"})
    assert response.status_code == 200
    assert sid_of(client) == before


def test_the_per_user_limit_refuses_a_login_on_the_login_form(demo_user: None) -> None:
    """EXAMPLE_MAX_SESSIONS=1 EXAMPLE_MAX_SESSIONS_POLICY=refuse: a second browser's login
    shows the message on the form and leaves its session as it was."""
    limited = {**example.SESSIONKIT, "STORE": DATABASE_STORE}
    limited.update(MAX_SESSIONS_PER_USER=1, MAX_SESSIONS_POLICY="refuse")
    with override_settings(SESSIONKIT=limited):
        laptop, phone = Client(), Client()
        assert log_in(laptop).status_code == 302  # type: ignore[attr-defined]
        assert "Sessions per user" in laptop.get("/whoami/").content.decode()
        phone.get("/")
        before = sid_of(phone)
        response = log_in(phone)
        page = response.content.decode()  # type: ignore[attr-defined]
        assert response.status_code == 200  # type: ignore[attr-defined]
        assert "as many devices as this site allows (1)" in page and 'name="password"' in page
        assert sid_of(phone) == before and alive(before)
        assert "You are not signed in." in phone.get("/whoami/").content.decode()
        assert "You are <strong>demo</strong>." in laptop.get("/whoami/").content.decode()


def test_logout_ends_the_session(client: Client, demo_user: None) -> None:
    log_in(client)
    sid = sid_of(client)
    assert client.get("/logout/").status_code == 405  # POST only
    response = client.post("/logout/")
    assert response.status_code == 302
    assert "Max-Age=0" in set_cookie(response)
    assert not alive(sid)
    assert Session.objects.count() == 0
    assert "You are not signed in." in client.get("/whoami/").content.decode()


def test_short_max_age_counts_down_and_expires(client: Client) -> None:
    client.get("/")
    response = client.post("/expiry/", {"action": "short"})
    assert response.status_code == 302
    assert re.search(r"Max-Age=(29|30)\b", set_cookie(response))

    page = client.get("/expiry/")
    assert 28 <= page.context["seconds_left"] <= 30
    assert 'id="seconds-left" data-seconds="' in page.content.decode()
    assert set_cookie(page) == ""  # reading does not push the expiry back (ROLLING off)

    Session.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "You have no session yet" in client.get("/expiry/").content.decode()
    assert "You visited this page 1 time." in client.get("/").content.decode()


def test_short_max_age_can_be_reset(client: Client) -> None:
    client.post("/expiry/", {"action": "short"})
    response = client.post("/expiry/", {"action": "reset"})
    assert re.search(r"Max-Age=(1799|1800)\b", set_cookie(response))
    assert client.get("/expiry/").context["seconds_left"] >= 1790


def test_demo_user_opens_the_admin(client: Client, demo_user: None) -> None:
    log_in(client)
    assert client.get("/admin/").status_code == 200


def test_devices_link_only_when_the_page_exists(client: Client, demo_user: None) -> None:
    page = client.get("/").content.decode()
    assert ("Where you're signed in" in page) is views.HAS_DEVICES_PAGE
    if views.HAS_DEVICES_PAGE:
        log_in(client)
        assert 'href="/sessions/"' in page
        assert client.get("/sessions/").status_code == 200


def test_settings_name_every_option() -> None:
    assert set(example.SESSIONKIT) == set(KEYS)
    assert set(example.SESSIONKIT["COOKIE"]) == set(COOKIE_KEYS)
    source = (EXAMPLE_DIR / "settings.py").read_text()
    for express_name in [*KEYS.values(), *COOKIE_KEYS.values()]:
        if not express_name.startswith("("):
            assert f"# {express_name}" in source or f"# cookie.{express_name}" in source


def test_redis_url_switches_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKIT_REDIS_URL", "redis://127.0.0.1:6379/3")
    values = runpy.run_path(str(EXAMPLE_DIR / "settings.py"))
    assert values["SESSIONKIT"]["STORE"] == {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": "redis://127.0.0.1:6379/3",
    }


def test_mongo_url_switches_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONKIT_REDIS_URL", raising=False)
    monkeypatch.setenv("SESSIONKIT_MONGO_URL", "mongodb://127.0.0.1:27017/example")
    values = runpy.run_path(str(EXAMPLE_DIR / "settings.py"))
    assert values["SESSIONKIT"]["STORE"] == {
        "BACKEND": "django_sessionkit.stores.mongo.MongoStore",
        "LOCATION": "mongodb://127.0.0.1:27017/example",
    }


def manage(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    skip = ("DJANGO_SETTINGS_MODULE", "SESSIONKIT_REDIS_URL", "SESSIONKIT_MONGO_URL")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env["SESSIONKIT_EXAMPLE_DB"] = str(db)
    return subprocess.run(
        [sys.executable, str(EXAMPLE_DIR / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_check_migrate_and_demouser(tmp_path: Path) -> None:
    db = tmp_path / "example.sqlite3"
    for args in (["check", "--fail-level", "WARNING"], ["migrate", "--noinput"], ["demouser"]):
        result = manage(*args, db=db)
        assert result.returncode == 0, result.stdout + result.stderr
    assert db.exists()
    assert "Demo user: demo  password: demo" in result.stdout
    assert str(db) in result.stdout  # names the store it uses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_readme_command_serves_the_example(tmp_path: Path) -> None:
    """README's `bash example_project/run`, as a new user runs it: start, visit twice, stop."""
    repo = EXAMPLE_DIR.parent
    if not (repo / ".venv" / "bin" / "python").exists():
        pytest.skip("the run script reuses .venv at the repository root: run `bash tests/run`")
    addr = f"127.0.0.1:{free_port()}"
    skip = ("DJANGO_SETTINGS_MODULE", "SESSIONKIT_REDIS_URL", "SESSIONKIT_MONGO_URL")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(EXAMPLE_ADDR=addr, SESSIONKIT_EXAMPLE_DB=str(tmp_path / "example.sqlite3"))
    log = tmp_path / "run.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", str(EXAMPLE_DIR / "run")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        deadline = time.monotonic() + 120
        while True:
            try:
                first = opener.open(f"http://{addr}/", timeout=5).read().decode()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        second = opener.open(f"http://{addr}/", timeout=5).read().decode()
        assert "visited this page 1 time" in first
        assert "visited this page 2 times" in second
        assert "Demo user: demo  password: demo" in log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode is not None


@pytest.mark.slow
def test_the_example_serves_its_sessions_from_mongodb(tmp_path: Path, mongo_server: Any) -> None:
    """`SESSIONKIT_MONGO_URL=… bash example_project/run`: the counter counts in MongoDB."""
    from tests.mongo_fixtures import DATABASE, drop_collection

    repo = EXAMPLE_DIR.parent
    if not (repo / ".venv" / "bin" / "python").exists():
        pytest.skip("the run script reuses .venv at the repository root: run `bash tests/run`")
    addr = f"127.0.0.1:{free_port()}"
    database = f"{DATABASE}_example"
    skip = ("DJANGO_SETTINGS_MODULE", "SESSIONKIT_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(EXAMPLE_ADDR=addr, SESSIONKIT_EXAMPLE_DB=str(tmp_path / "example.sqlite3"))
    env["SESSIONKIT_MONGO_URL"] = f"{mongo_server.url.rstrip('/')}/{database}"
    log = tmp_path / "run.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", str(EXAMPLE_DIR / "run")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        deadline = time.monotonic() + 120
        while True:
            try:
                first = opener.open(f"http://{addr}/", timeout=5).read().decode()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        second = opener.open(f"http://{addr}/", timeout=5).read().decode()
        assert "visited this page 1 time" in first
        assert "visited this page 2 times" in second
        with mongo_server.client() as client:
            documents = list(client[database]["sessionkit_sessions"].find())
        assert len(documents) == 1 and documents[0]["data"]["views"] == 2
    finally:
        server.terminate()
        server.wait(timeout=20)
        drop_collection(mongo_server, "sessionkit_sessions", database)


def run_script(addr: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    skip = ("DJANGO_SETTINGS_MODULE", "SESSIONKIT_REDIS_URL", "SESSIONKIT_MONGO_URL")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(EXAMPLE_ADDR=addr, SESSIONKIT_EXAMPLE_DB=str(tmp_path / "example.sqlite3"))
    return subprocess.run(
        ["bash", str(EXAMPLE_DIR / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_taken_port_says_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(f"127.0.0.1:{port}", tmp_path)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert f"Port {port} on 127.0.0.1 is already in use" in said
    suggested = re.search(r"EXAMPLE_ADDR=127\.0\.0\.1:(\d+) bash example_project/run", said)
    assert suggested, said
    assert int(suggested.group(1)) != port
    with socket.socket() as probe:  # the suggestion is a port that is free
        probe.bind(("127.0.0.1", int(suggested.group(1))))
    assert "migrating" not in said  # it stopped before doing anything


@pytest.mark.parametrize("addr", ["127.0.0.1:http", "127.0.0.1:70000", "localhost:"])
def test_an_address_runserver_cannot_take_is_refused_with_the_form(
    addr: str, tmp_path: Path
) -> None:
    result = run_script(addr, tmp_path)
    assert result.returncode == 1
    assert f"EXAMPLE_ADDR={addr!r} is not an address runserver takes" in result.stderr
    assert "HOST:PORT" in result.stderr and "migrating" not in result.stdout


def test_who_am_i_shows_the_session_s_timeouts(client: Client) -> None:
    client.get("/")
    assert "No idle or absolute timeout is set" in client.get("/whoami/").content.decode()
    example = {**example_sessionkit(), "IDLE_TIMEOUT": 20, "ABSOLUTE_TIMEOUT": 3600}
    with override_settings(SESSIONKIT=example):
        page = client.get("/whoami/").content.decode()
    assert "ends after 20 s without a visit" in page
    assert "3600 s after sign-in, at " in page


def example_sessionkit() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.SESSIONKIT)
