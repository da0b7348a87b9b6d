"""MAX_SESSIONS_POLICY = "refuse": a login past MAX_SESSIONS_PER_USER fails with a clear,
overridable message and writes nothing, on every store, sync and async. (Many logins at
once: tests/test_concurrency.py.)"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import unquote

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client, override_settings

from django_sessionkit import cookies, signals
from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.limits import DEFAULT_MESSAGE, SessionLimitReached
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import USER_LOCK_WAIT, Store
from django_sessionkit.stores.database import DatabaseStore

pytestmark = pytest.mark.django_db

BUILT_IN = DEFAULT_MESSAGE.replace("{limit}", "2")


def refusing(**more: Any) -> Any:
    store = sessionkit_settings.raw.get("STORE")
    values = {"MAX_SESSIONS_PER_USER": 2, "MAX_SESSIONS_POLICY": "refuse", **more}
    return override_settings(SESSIONKIT={**({} if store is None else {"STORE": store}), **values})


def key_of(browser: Client | AsyncClient) -> str:
    sid = cookies.cookie_to_id(unquote(browser.cookies["sessionid"].value))
    assert sid
    return cookies.hash_id(sid)


def signed_in(username: str = "alice") -> Client:
    browser = Client()
    assert browser.get(f"/login/{username}/").status_code == 200
    return browser


def test_a_login_past_the_limit_is_refused_and_writes_nothing(each_store: Store, user: Any) -> None:
    alice = str(user.pk)
    with refusing():
        laptop, phone = signed_in(), signed_in()
        tablet = Client()
        assert tablet.get("/count/").json() == {"views": 1}  # an anonymous session first
        anonymous = key_of(tablet)
        stored = each_store.load(anonymous)

        response = tablet.get("/login/alice/")

        assert response.status_code == 403
        assert BUILT_IN in response.content.decode()
        assert "sessionid" not in response.cookies  # no Set-Cookie at all
        assert each_store.count(user_id=alice) == 2
        assert key_of(tablet) == anonymous
        assert each_store.load(anonymous) == stored  # as it was: not even touched
        assert tablet.get("/count/").json() == {"views": 2}  # and it still loads
        assert tablet.get("/whoami/").json() == {"user": None}
        assert laptop.get("/whoami/").json() == {"user": "alice"}
        assert phone.get("/whoami/").json() == {"user": "alice"}


def test_a_refused_visitor_without_a_session_gets_none(each_store: Store, user: Any) -> None:
    with refusing():
        signed_in(), signed_in()
        before = each_store.count()
        response = Client().get("/login/alice/")
        assert response.status_code == 403
        assert "sessionid" not in response.cookies
        assert each_store.count() == before


def test_a_login_within_the_limit_is_saved_at_once_and_gets_its_cookie(
    each_store: Store, user: Any
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def listener(name: str) -> Any:
        return lambda **kwargs: events.append((name, kwargs))

    receivers = {name: listener(name) for name in ("session_created", "session_rotated")}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        # A browser-session cookie without ROLLING: Django's rules send no cookie for a
        # changed session that is not new; the login's session (saved at once) gets one.
        with refusing(COOKIE={"MAX_AGE": None}):
            browser = Client()
            browser.get("/count/")
            anonymous = key_of(browser)
            events.clear()
            response = browser.get("/login/alice/")
            assert response.status_code == 200 and "sessionid" in response.cookies
            signed = key_of(browser)
            assert signed != anonymous and each_store.load(anonymous) is None
            record_ = each_store.load(signed)
            assert record_ is not None and record_.user_id == str(user.pk)
            assert record_.data["views"] == 1 and "_auth_user_hash" in record_.data
            assert browser.get("/whoami/").json() == {"user": "alice"}
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)
    names = [name for name, _ in events]
    assert names == ["session_rotated", "session_created"]
    assert events[0][1]["old_key_hash"] == anonymous and events[0][1]["key_hash"] == signed


def test_a_place_frees_up_when_a_session_ends(each_store: Store, user: Any) -> None:
    with refusing():
        laptop, _phone = signed_in(), signed_in()
        assert Client().get("/login/alice/").status_code == 403
        laptop.get("/logout/")
        assert Client().get("/login/alice/").status_code == 200
        assert each_store.count(user_id=str(user.pk)) == 2


def test_signing_in_again_in_a_signed_in_browser_is_no_new_session(
    each_store: Store, user: Any
) -> None:
    with refusing():
        laptop, _phone = signed_in(), signed_in()
        assert laptop.get("/login/alice/").status_code == 200  # the same user: allowed
        assert each_store.count(user_id=str(user.pk)) == 2


def test_other_users_are_not_limited_by_one_user(
    each_store: Store, user: Any, other_user: Any
) -> None:
    with refusing():
        signed_in(), signed_in()
        assert Client().get("/login/bob/").status_code == 200


def test_a_login_view_can_show_the_message_itself(each_store: Store, user: Any) -> None:
    with refusing(MAX_SESSIONS_MESSAGE="Only {limit} devices at once, please."):
        signed_in(), signed_in()
        browser = Client()
        response = browser.get("/login-form/alice/")
        assert response.status_code == 200
        # request.user was never set: login() stopped before it
        assert response.json() == {"error": "Only 2 devices at once, please.", "user": None}
        assert "sessionid" not in response.cookies
        assert each_store.count(user_id=str(user.pk)) == 2


def test_the_refusal_page_is_a_template_the_project_overrides(user: Any) -> None:
    templates = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "django_sessionkit/session_limit_reached.html": (
                                "<p id=limit>{{ limit }}: {{ message }}</p>"
                            )
                        },
                    )
                ]
            },
        }
    ]
    with refusing(), override_settings(TEMPLATES=templates):
        signed_in(), signed_in()
        response = Client().get("/login/alice/")
    assert response.status_code == 403
    assert response.content.decode() == f"<p id=limit>2: {BUILT_IN}</p>"


def test_a_login_whose_response_fails_gives_its_place_back(each_store: Store, user: Any) -> None:
    with refusing():
        signed_in()
        browser = Client()
        response = browser.get("/login-fail/alice/")
        assert response.status_code == 500 and "sessionid" not in response.cookies
        assert each_store.count(user_id=str(user.pk)) == 1
        signed_in()  # the second place is free


def test_the_test_client_login_is_refused_too(each_store: Store, user: Any) -> None:
    with refusing():
        signed_in(), signed_in()
        with pytest.raises(SessionLimitReached) as caught:
            Client().force_login(user)
        assert str(caught.value) == BUILT_IN and caught.value.limit == 2
        assert each_store.count(user_id=str(user.pk)) == 2


def test_async_logins_are_refused_past_the_limit(each_store: Store, user: Any) -> None:
    async def scenario() -> None:
        first, second, third = AsyncClient(), AsyncClient(), AsyncClient()
        assert (await first.get("/async/login/alice/")).status_code == 200
        assert (await second.get("/async/login/alice/")).status_code == 200
        await third.get("/async/count/")
        anonymous = key_of(third)
        refused = await third.get("/async/login/alice/")
        assert refused.status_code == 403 and BUILT_IN in refused.content.decode()
        assert "sessionid" not in refused.cookies
        assert await each_store.acount(user_id=str(user.pk)) == 2
        assert key_of(third) == anonymous
        assert (await third.get("/async/count/")).json() == {"views": 2}
        assert (await first.get("/async/read/")).json()["user"] == "alice"

    with refusing():
        async_to_sync(scenario)()


@pytest.mark.parametrize(
    "each_store",
    [
        pytest.param("postgresql", marks=pytest.mark.django_db(databases=["default", "pg"])),
        pytest.param("mysql", marks=pytest.mark.django_db(databases=["default", "mysql"])),
        "redis",
        "redis-cluster",
        "mongo",
    ],
    indirect=True,
)
def test_the_lock_is_exclusive_per_user(each_store: Store, user: Any) -> None:
    """While one holder runs, a second holder of the same user waits, and gives up with a
    503-worthy StoreUnavailable after USER_LOCK_WAIT; another user's lock is free. (SQLite's
    in-memory test database is one connection shared by the threads: its own test below
    runs on a database file.)"""
    lock_is_exclusive(each_store)


@pytest.mark.django_db(transaction=True, databases=["default", "sqlite_file"])
def test_the_lock_is_exclusive_per_user_on_sqlite(user: Any) -> None:
    with override_settings(SESSIONKIT={"STORE": {"LOCATION": "sqlite_file"}}):
        store = get_store()
        assert isinstance(store, DatabaseStore)
        lock_is_exclusive(store, per_user=False)  # the database's write lock: every user's


def lock_is_exclusive(each_store: Store, *, per_user: bool = True) -> None:
    from django.db import connections

    from django_sessionkit.stores.base import StoreUnavailable

    inside, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            each_store.user_locked("7", lambda: (inside.set(), release.wait(5)))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(5)
        if per_user:
            assert each_store.user_locked("8", lambda: "free") == "free"
        with pytest.raises(StoreUnavailable) as caught:
            each_store.user_locked("7", lambda: "never")
        assert "stayed held" in str(caught.value)
        assert not each_store.breaker.is_open  # a busy lock is no outage
    finally:
        release.set()
        holder.join(10)
    assert failures == []
    assert each_store.user_locked("7", lambda: "after") == "after"


@pytest.mark.django_db(transaction=True)  # the login runs in a thread of its own
def test_a_busy_lock_is_a_503_and_writes_nothing(redis_standalone: Any, user: Any) -> None:
    from tests.redis_fixtures import sessionkit_on

    with sessionkit_on(redis_standalone) as store, refusing():
        holder = store.user_locked  # hold alice's lock while the login runs
        answers: list[int] = []

        def login() -> None:
            answers.append(Client().get("/login/alice/").status_code)

        def work() -> None:
            thread = threading.Thread(target=login)
            thread.start()
            thread.join(USER_LOCK_WAIT + 5)

        holder(str(user.pk), work)
        assert answers == [503]
        assert store.count(user_id=str(user.pk)) == 0
        assert not store.breaker.is_open
        assert Client().get("/login/alice/").status_code == 200


def test_checks() -> None:
    from django_sessionkit.checks import sessionkit_checks

    def ids(**values: Any) -> list[tuple[str, str]]:
        with override_settings(SESSIONKIT=values):
            return [(e.id or "", e.msg) for e in sessionkit_checks()]

    assert ids(MAX_SESSIONS_PER_USER=2, MAX_SESSIONS_POLICY="refuse") == []
    assert ids(MAX_SESSIONS_PER_USER=2, MAX_SESSIONS_POLICY="evict_oldest") == []
    for wrong in ("Refuse", "evict", 1, True):
        found = ids(MAX_SESSIONS_PER_USER=2, MAX_SESSIONS_POLICY=wrong)
        assert [i for i, _ in found] == ["sessionkit.E031"], wrong
        assert "'evict_oldest' or 'refuse'" in found[0][1]
    for wrong in ("", "  ", 3, ["a"]):
        found = ids(MAX_SESSIONS_PER_USER=2, MAX_SESSIONS_MESSAGE=wrong)
        assert [i for i, _ in found] == ["sessionkit.E031"], wrong
        assert "MAX_SESSIONS_MESSAGE" in found[0][1]
    found = ids(MAX_SESSIONS_POLICY="refuse")
    assert [i for i, _ in found] == ["sessionkit.W007"]
    found = ids(
        MAX_SESSIONS_PER_USER=2,
        MAX_SESSIONS_POLICY="refuse",
        STORE={"BACKEND": "tests.test_session_limit.UnlockedStore"},
    )
    assert [i for i, _ in found] == ["sessionkit.E033"]
    assert "UnlockedStore has no per-user lock" in found[0][1]
    # the same store is fine with the default policy, which needs no lock
    assert (
        ids(MAX_SESSIONS_PER_USER=2, STORE={"BACKEND": "tests.test_session_limit.UnlockedStore"})
        == []
    )


def test_the_message_may_be_a_lazy_translation(user: Any) -> None:
    from django.utils.translation import gettext_lazy

    with refusing(MAX_SESSIONS_MESSAGE=gettext_lazy("At most {limit}.")):
        signed_in(), signed_in()
        response = Client().get("/login-form/alice/")
    assert response.json()["error"] == "At most 2."


class UnlockedStore(DatabaseStore):
    """A store without a per-user lock (as a third-party store may be)."""

    locks_users = False


def test_the_evict_oldest_policy_is_the_default(user: Any) -> None:
    with override_settings(SESSIONKIT={"MAX_SESSIONS_PER_USER": 1}):
        first, second = signed_in(), signed_in()
        assert first.get("/whoami/").json() == {"user": None}
        assert second.get("/whoami/").json() == {"user": "alice"}
    assert get_user_model().objects.count() == 1


def _held_exclusively(store: Store) -> None:
    """One holder at a time per user, and the lock taken again once released."""
    from django_sessionkit.stores.base import StoreUnavailable

    def inner() -> str:
        with pytest.raises(StoreUnavailable):
            store.user_locked("7", lambda: "never")  # same user, same process: still held
        assert store.count() == 0  # the lock is no session to the Express app or to us
        return "held"

    assert store.user_locked("7", inner) == "held"
    assert store.user_locked("7", lambda: "again") == "again"

    async def inner_async() -> str:
        return "async"

    assert async_to_sync(store.auser_locked)("7", inner_async) == "async"


def test_the_express_redis_layout_locks_outside_its_prefix(redis_standalone: Any) -> None:
    import redis

    from django_sessionkit.stores.express import ExpressRedisStore
    from tests.redis_fixtures import new_prefix

    prefix = new_prefix()
    store = ExpressRedisStore(redis_standalone.url, {"PREFIX": prefix})
    try:
        _held_exclusively(store)
        client = redis.Redis.from_url(redis_standalone.url)
        seen: list[Any] = []
        store.user_locked("7", lambda: seen.extend(client.keys("*lock*7")))
        assert seen == [f"sessionkit:lock:{prefix}u:7".encode()]
        assert client.keys(prefix + "*") == []
    finally:
        store.close()


def test_the_express_mongo_layout_locks_in_a_collection_of_its_own(mongo_server: Any) -> None:
    import uuid

    from django_sessionkit.stores.mongo import ExpressMongoStore

    collection = f"express_{uuid.uuid4().hex[:8]}"
    store = ExpressMongoStore(mongo_server.url, {"DATABASE": "sk_test", "COLLECTION": collection})
    try:
        _held_exclusively(store)
        with mongo_server.client() as client:
            names = client["sk_test"].list_collection_names()
            assert f"{collection}_locks" in names
            assert client["sk_test"][f"{collection}_locks"].count_documents({}) == 0
            client["sk_test"].drop_collection(collection)
            client["sk_test"].drop_collection(f"{collection}_locks")
    finally:
        store.close()
