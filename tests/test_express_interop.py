"""COMPAT="express": the Django test app and a real Express app (express-session +
connect-redis, ``tests/express_app``) share sessions on one real Redis (our own server).

One simulated browser holds one ``connect.sid`` cookie and sends it to both apps.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.test import Client, override_settings
from django.utils import timezone

from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Changes, Store, UpdateError
from django_sessionkit.stores.express import ExpressRedisStore
from tests.express_peer import (
    ExpressApp,
    Reply,
    cookie_value,
    express_get,
    npm_ci,
    require_node,
    start_app,
)
from tests.redis_fixtures import delete_prefix, new_prefix
from tests.redis_servers import Cluster, Standalone
from tests.store_contract import StoreContract, close_to, make_record

pytestmark = pytest.mark.django_db

NAME = "connect.sid"
OLD, NEW = "s3cret-old", "s3cret-new"
DAY = 86400
STORE_BACKEND = "django_sessionkit.stores.express.ExpressRedisStore"
USER_MIDDLEWARE = "django_sessionkit.express.ExpressUserMiddleware"


def load_express_user(value: Any, request: HttpRequest) -> Any:
    """The EXPRESS_USER_LOADER of these tests: Express's {"username": …} → a Django user."""
    if not isinstance(value, dict):
        return None
    return get_user_model().objects.filter(username=value.get("username")).first()


@pytest.fixture(scope="session")
def node_ready() -> None:
    require_node()
    npm_ci()


class Peer:
    """Both apps, one Redis, one prefix: start Express apps and configure Django alike."""

    def __init__(self, redis: Standalone, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.apps: list[ExpressApp] = []

    def express(
        self,
        secrets: list[str],
        *,
        max_age: int | None = DAY,
        resave: bool = False,
        rolling: bool = False,
        save_uninitialized: bool = False,
    ) -> ExpressApp:
        app = start_app(
            {
                "REDIS_URL": self.redis.url,
                "PREFIX": self.prefix,
                "SESSION_SECRETS": ",".join(secrets),
                "COOKIE_MAX_AGE_MS": "" if max_age is None else str(max_age * 1000),
                "RESAVE": str(resave).lower(),
                "ROLLING": str(rolling).lower(),
                "SAVE_UNINITIALIZED": str(save_uninitialized).lower(),
            }
        )
        self.apps.append(app)
        return app

    def django(
        self,
        secrets: list[str],
        *,
        max_age: int | None = DAY,
        user_loader: bool = False,
        **options: Any,
    ) -> override_settings:
        sessionkit: dict[str, Any] = {
            "COMPAT": "express",
            "NAME": NAME,
            "SECRET": secrets,
            "COOKIE": {"MAX_AGE": max_age},
            "STORE": {
                "BACKEND": STORE_BACKEND,
                "LOCATION": self.redis.url,
                "OPTIONS": {"PREFIX": self.prefix},
            },
            **options,
        }
        middleware = list(settings.MIDDLEWARE)
        if user_loader:
            sessionkit["EXPRESS_USER_LOADER"] = f"{__name__}.load_express_user"
            auth = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware")
            middleware.insert(auth + 1, USER_MIDDLEWARE)
        return override_settings(SESSIONKIT=sessionkit, MIDDLEWARE=middleware)

    def raw(self, sid: str) -> dict[str, Any] | None:
        with self.redis.server.client() as conn:
            text = conn.get(self.prefix + sid)
        return None if text is None else json.loads(text)

    def keys(self) -> list[str]:
        with self.redis.server.client() as conn:
            return sorted(
                k.decode() if isinstance(k, bytes) else k for k in conn.keys(self.prefix + "*")
            )


@pytest.fixture
def peer(node_ready: None, redis_standalone: Standalone) -> Iterator[Peer]:
    found = Peer(redis_standalone, new_prefix())
    yield found
    for app in found.apps:
        app.stop()
    delete_prefix(redis_standalone, found.prefix)


class Browser:
    """One cookie jar (just ``connect.sid``), shared by requests to both apps."""

    def __init__(self) -> None:
        self.cookie: str | None = None

    @property
    def header(self) -> str | None:
        return None if self.cookie is None else f"{NAME}={self.cookie}"

    def _keep(self, set_cookie: str | None) -> None:
        if set_cookie is not None:
            self.cookie = cookie_value(set_cookie, NAME)

    def express(self, app: ExpressApp, path: str) -> Reply:
        reply = express_get(app, path, self.header, NAME)
        self._keep(reply.set_cookie)
        return reply

    def django(self, path: str) -> Reply:
        extra: dict[str, Any] = {} if self.header is None else {"HTTP_COOKIE": self.header}
        response = Client().get(path, **extra)
        morsel = response.cookies.get(NAME)
        set_cookie = None if morsel is None else morsel.OutputString()
        reply = Reply(response.status_code, response.content.decode(), set_cookie)
        self._keep(set_cookie)
        get_store().close()
        return reply

    @property
    def sid(self) -> str:
        from urllib.parse import unquote

        assert self.cookie is not None
        return unquote(self.cookie)[2:].rpartition(".")[0]


# --- the counter ----------------------------------------------------------------


def test_the_counter_counts_visits_made_alternately_to_both_apps(peer: Peer) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        assert browser.express(app, "/").json() == {"views": 1}
        assert browser.django("/count/").json() == {"views": 2}
        assert browser.express(app, "/").json() == {"views": 3}
        assert browser.django("/count/").json() == {"views": 4}
        assert isinstance(get_store(), ExpressRedisStore)
    stored = peer.raw(browser.sid)
    assert stored is not None
    assert next(iter(stored)) == "cookie"
    assert list(stored["cookie"]) == ["originalMaxAge", "expires", "httpOnly", "path"]
    assert stored["cookie"]["originalMaxAge"] == DAY * 1000
    assert stored["views"] == 4
    assert peer.keys() == [peer.prefix + browser.sid]  # connect-redis's layout: prefix + id


def test_each_side_keeps_the_others_keys(peer: Peer) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.express(app, "/set/theme/dark")
        browser.django("/set/lang/fr/")
        browser.express(app, "/")  # Express writes its whole loaded copy back
        stored = peer.raw(browser.sid)
        assert stored is not None
        assert stored["theme"] == "dark" and stored["lang"] == "fr"
        assert stored["_sessionkit"]["v"] >= 1  # our metadata survived the Express save
        data = browser.django("/read/").json()["data"]  # type: ignore[index]
        assert data == {"theme": "dark", "lang": "fr", "views": 1}


# --- logins ---------------------------------------------------------------------


def test_a_django_login_is_seen_by_express(peer: Peer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.django("/login/alice/")
        me = browser.express(app, "/me")
        assert me.status == 200
        assert me.json() == {"user": None, "django_user_id": str(user.pk)}
        browser.express(app, "/")  # an Express save keeps Django's auth keys
        assert browser.django("/whoami/").json() == {"user": "alice"}


def test_an_express_login_signs_the_user_in_on_django_through_the_loader(
    peer: Peer, user: Any
) -> None:
    app = peer.express([NEW])
    browser = Browser()
    browser.express(app, "/login/alice")
    with peer.django([NEW]):  # no loader: the hook is opt-in
        assert browser.django("/whoami/").json() == {"user": None}
    with peer.django([NEW], user_loader=True):
        assert browser.django("/whoami/").json() == {"user": "alice"}
        assert browser.django("/whoami/").json() == {"user": "alice"}
    me = browser.express(app, "/me").json()
    assert me == {"user": {"username": "alice"}, "django_user_id": str(user.pk)}


def test_the_loader_may_refuse(peer: Peer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    browser.express(app, "/login/nobody-in-django")
    with peer.django([NEW], user_loader=True):
        assert browser.django("/whoami/").json() == {"user": None}


# --- logouts --------------------------------------------------------------------


def test_logout_on_express_ends_the_session_on_django(peer: Peer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.django("/login/alice/")
        sid = browser.sid
        assert browser.express(app, "/logout").body == "bye"
        assert peer.raw(sid) is None
        assert browser.cookie is None
        browser.cookie = f"s%3A{sid}.x"  # even a browser that kept the old cookie
        assert browser.django("/whoami/").json() == {"user": None}


def test_logout_on_django_ends_the_session_on_express(peer: Peer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    browser.express(app, "/login/alice")
    with peer.django([NEW], user_loader=True):
        assert browser.django("/whoami/").json() == {"user": "alice"}
        kept = browser.cookie
        browser.django("/logout/")
    assert peer.keys() == []
    assert browser.express(app, "/me").status == 401
    browser.cookie = kept  # the pre-logout cookie is dead too
    assert browser.express(app, "/me").status == 401


def test_ending_every_session_reaches_those_express_created(peer: Peer) -> None:
    app = peer.express([NEW])
    express_only, both = Browser(), Browser()
    express_only.express(app, "/")  # no sessionkit metadata in this one
    both.express(app, "/")
    with peer.django([NEW]):
        both.django("/count/")
        store = get_store()
        assert {k for k, _ in store.list(signed_in=False)} == {express_only.sid, both.sid}
        assert store.delete_all(keep=both.sid) == 1
    assert peer.keys() == [peer.prefix + both.sid]
    assert express_only.express(app, "/").json() == {"views": 1}  # starts over


def test_the_admin_pages_through_sessions_in_express_layout(peer: Peer, admin_user: Any) -> None:
    """Keys are the ids here: links carry a last-seen time and the ref (a hash) only."""
    now = timezone.now().replace(microsecond=0)
    with peer.django([NEW]):
        store = get_store()
        keys = [
            store.save(sid, make_record(last_seen=now - timedelta(seconds=i)), must_create=True)
            and sid
            for i, sid in enumerate(secrets.token_urlsafe(24) for _ in range(60))
        ]
        client = Client()  # force_login would set Django's cookie, not connect.sid
        assert client.get(f"/login/{admin_user.username}/").status_code == 200
        refs: list[str] = []
        listing = "/admin/django_sessionkit/session/"
        url: str | None = ""
        while url is not None:
            response = client.get(listing + url)
            assert response.status_code == 200, response.content[:300]
            page = response.content.decode()
            assert not any(sid in page for sid in keys)  # never an id
            refs += [row.ref for row in response.context["rows"]]
            url = response.context["next_url"]
        assert len(refs) == len(set(refs)) == 61  # and the admin's own
        row = response.context["rows"][-1]
        detail = client.get(f"{listing}{row.ref}/?s={row.seen}")
        assert detail.status_code == 200 and detail.context["row"].ref == row.ref


# --- secrets ----------------------------------------------------------------------


def test_secret_rotation_on_both_sides(peer: Peer) -> None:
    old_app = peer.express([OLD])
    rotated_app = peer.express([NEW, OLD])
    new_only_app = peer.express([NEW])
    browser = Browser()
    assert browser.express(old_app, "/").json() == {"views": 1}
    signed_with_old = browser.cookie
    with peer.django([NEW, OLD]):  # both verify the old signature
        assert browser.django("/count/").json() == {"views": 2}
    # Django re-signed with the new secret when it sent the cookie.
    assert browser.cookie != signed_with_old
    assert browser.express(new_only_app, "/").json() == {"views": 3}
    browser.cookie = signed_with_old
    assert browser.express(rotated_app, "/").json() == {"views": 4}
    # Once the old secret is gone from both, its cookies start over on both.
    browser.cookie = signed_with_old
    with peer.django([NEW]):
        assert browser.django("/count/").json() == {"views": 1}
    browser.cookie = signed_with_old
    assert browser.express(new_only_app, "/").json() == {"views": 1}


# --- rolling / resave / saveUninitialized -----------------------------------------

STEPS = [
    ("new, untouched", False, {"express": "/plain", "django": "/plain/"}),
    ("new, modified", False, {"express": "/", "django": "/count/"}),
    ("loaded, untouched", True, {"express": "/plain", "django": "/plain/"}),
    ("loaded, modified", True, {"express": "/", "django": "/count/"}),
]


def _set_cookie_pattern(
    peer: Peer, app: ExpressApp, side: str, settings_: Callable[[], override_settings]
) -> list[tuple[str, bool]]:
    found = []
    for label, needs_cookie, paths in STEPS:
        browser = Browser()
        with settings_():
            if needs_cookie:  # a session both sides can load, made by the other app
                if side == "express":
                    browser.django("/count/")
                else:
                    browser.express(app, "/")
                assert browser.cookie is not None
            reply = (
                browser.express(app, paths["express"])
                if side == "express"
                else browser.django(paths["django"])
            )
        found.append((label, reply.set_cookie is not None))
    return found


@pytest.mark.parametrize(
    ("resave", "rolling", "save_uninitialized", "max_age"),
    [
        (False, False, False, DAY),
        (False, True, False, DAY),
        (True, False, True, DAY),
        (False, False, True, DAY),
        (False, False, False, None),
        (False, True, False, None),
    ],
)
def test_the_same_options_give_the_same_set_cookie_behaviour(
    peer: Peer, resave: bool, rolling: bool, save_uninitialized: bool, max_age: int | None
) -> None:
    app = peer.express(
        [NEW],
        max_age=max_age,
        resave=resave,
        rolling=rolling,
        save_uninitialized=save_uninitialized,
    )

    def django_settings() -> override_settings:
        return peer.django(
            [NEW],
            max_age=max_age,
            RESAVE=resave,
            ROLLING=rolling,
            SAVE_UNINITIALIZED=save_uninitialized,
        )

    on_express = _set_cookie_pattern(peer, app, "express", django_settings)
    on_django = _set_cookie_pattern(peer, app, "django", django_settings)
    assert on_django == on_express


# --- the store's own rules ----------------------------------------------------------


def test_a_session_deleted_by_express_is_never_recreated_by_django(peer: Peer) -> None:
    app = peer.express([NEW])
    browser = Browser()
    browser.express(app, "/")
    sid = browser.sid
    with peer.django([NEW]):
        store = get_store()
        record = store.load(sid)
        assert record is not None
        browser.express(app, "/logout")
        with pytest.raises(UpdateError):
            store.save(sid, record, changes=Changes(set={"views": 9}))
        assert peer.raw(sid) is None


# --- the Store contract, in connect-redis's layout ------------------------------------


class TestExpressRedisStoreContract(StoreContract):
    @pytest.fixture
    def store(self, redis_standalone: Standalone) -> Iterator[ExpressRedisStore]:
        store = ExpressRedisStore(redis_standalone.url, {"PREFIX": new_prefix()})
        yield store
        store.close()
        delete_prefix(redis_standalone, store.prefix)

    def test_touch_moves_expiry_and_last_seen_but_not_data(self, store: Store) -> None:
        """connect-redis's touch is EXPIRE only: the expiry moves, last_seen waits for a save."""
        key, saved = self.create(store, data={"views": 5})
        later = timezone.now() + timedelta(days=2)
        assert store.touch(key, later, timezone.now() + timedelta(seconds=30)) is True
        loaded = store.load(key)
        assert loaded is not None
        assert loaded.data == {"views": 5}
        assert loaded.version == saved.version
        assert close_to(loaded.expires_at, later)
        assert close_to(loaded.last_seen, saved.last_seen)

    def test_touch_moves_a_session_up_in_filtered_listings(self, store: Store) -> None:
        """connect-redis's touch keeps last_seen (above): the order changes at the next save."""
        now = timezone.now()
        older, saved = self.create(store, user_id="5", ip="10.9.9.9", last_seen=now)
        newer, _ = self.create(store, user_id="6", ip="10.9.9.9", last_seen=now)
        saved.last_seen = now + timedelta(seconds=5)
        store.save(older, saved, changes=Changes())
        for filters in ({}, {"signed_in": True}, {"ip": "10.9.9.9"}, {"ip": "10.9.0.0/16"}):
            assert [k for k, _ in store.list(**filters)] == [older, newer], filters

    def test_purge_expired_removes_only_expired_sessions_in_batches(self, store: Store) -> None:
        """Redis expires connect-redis's keys itself: an expired create is never stored."""
        past = timezone.now() - timedelta(minutes=1)
        for _ in range(5):
            self.create(store, expires_at=past, user_id="3")
        live, _ = self.create(store, user_id="3")
        assert list(store.purge_expired(batch_size=2)) == []
        assert store.load(live) is not None
        assert store.count() == 1
        assert store.count(user_id="3") == 1

    def test_written_json_is_express_sessions(self, store: Store) -> None:
        assert isinstance(store, ExpressRedisStore)
        key, _ = self.create(store, data={"views": 1, "_auth_user_id": "7"})
        with redis_client_for(store) as conn:
            text = conn.get(store.redis_key(key))
            ttl = conn.ttl(store.redis_key(key))
        value = json.loads(text)
        assert list(value) == ["cookie", "views", "_auth_user_id", "_sessionkit"]
        assert list(value["cookie"])[:2] == ["originalMaxAge", "expires"]
        assert value["cookie"]["expires"].endswith("Z")
        assert 3590 <= ttl <= 3600  # ceil(expires - now), as connect-redis's getTTL

    def test_reserved_keys_are_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="reserved"):
            self.create(store, data={"cookie": 1})


def redis_client_for(store: ExpressRedisStore) -> Any:
    import redis
    import redis.cluster

    if isinstance(store.location, list):  # a Cluster's nodes
        host, port = store.location[0].rsplit(":", 1)
        return redis.cluster.RedisCluster(host=host, port=int(port), decode_responses=True)
    return redis.Redis.from_url(store.location, decode_responses=True)


def test_check_accepts_connect_redis_options_and_names_wrong_ones() -> None:
    assert ExpressRedisStore.check("redis://127.0.0.1:7210/0", {"TTL": 60}) == []
    problems = ExpressRedisStore.check(
        "redis://127.0.0.1:7210/0", {"TTL": "60", "DISABLE_TOUCH": 1, "NOPE": 1}
    )
    assert len(problems) == 3
    assert any("ExpressRedisStore option" in p for p in problems)


class TestExpressRedisStoreContractOnCluster(TestExpressRedisStoreContract):
    """connect-redis's layout on a Redis Cluster: its listings SCAN every master."""

    @pytest.fixture
    def store(self, redis_cluster: Cluster) -> Iterator[ExpressRedisStore]:
        store = ExpressRedisStore(redis_cluster.nodes, {"MODE": "cluster", "PREFIX": new_prefix()})
        yield store
        store.close()
        delete_prefix(redis_cluster, store.prefix)
