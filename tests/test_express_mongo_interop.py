"""COMPAT="express" on MongoDB: the Django test app and a real Express app (express-session +
connect-mongo, ``tests/express_app`` with ``STORE=mongo``) share sessions in one collection
of our own nx-27017 (tests/mongo_fixtures.py).

One simulated browser holds one ``connect.sid`` cookie and sends it to both apps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone

from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Changes, Store, UpdateError
from django_sessionkit.stores.mongo import ExpressMongoStore
from django_sessionkit.stores.mongo.express import stored_expiry
from tests.express_peer import ExpressApp, start_app
from tests.mongo_fixtures import DATABASE, MongoServer, drop_collection, new_collection
from tests.store_contract import StoreContract, close_to
from tests.tcp_proxy import proxy_to
from tests.test_express_interop import NAME, USER_MIDDLEWARE, Browser

pytestmark = pytest.mark.django_db

NEW = "s3cret-new"
DAY = 86400
BACKEND = "django_sessionkit.stores.mongo.ExpressMongoStore"


class MongoPeer:
    """Both apps on one MongoDB collection: start Express apps and configure Django alike."""

    def __init__(self, server: MongoServer, collection: str) -> None:
        self.server = server
        self.collection = collection
        self.apps: list[ExpressApp] = []

    def express(self, secrets: list[str], *, max_age: int | None = DAY) -> ExpressApp:
        app = start_app(
            {
                "STORE": "mongo",
                "MONGO_URL": self.server.url,
                "MONGO_DB": DATABASE,
                "MONGO_COLLECTION": self.collection,
                "SESSION_SECRETS": ",".join(secrets),
                "COOKIE_MAX_AGE_MS": "" if max_age is None else str(max_age * 1000),
            }
        )
        self.apps.append(app)
        return app

    def django(
        self, secrets: list[str], *, user_loader: bool = False, **options: Any
    ) -> override_settings:
        sessionkit: dict[str, Any] = {
            "COMPAT": "express",
            "NAME": NAME,
            "SECRET": secrets,
            "COOKIE": {"MAX_AGE": DAY},
            "STORE": {
                "BACKEND": BACKEND,
                "LOCATION": self.server.url,
                "OPTIONS": {"DATABASE": DATABASE, "COLLECTION": self.collection, **options},
            },
        }
        middleware = list(settings.MIDDLEWARE)
        if user_loader:
            sessionkit["EXPRESS_USER_LOADER"] = "tests.test_express_interop.load_express_user"
            auth = middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware")
            middleware.insert(auth + 1, USER_MIDDLEWARE)
        return override_settings(SESSIONKIT=sessionkit, MIDDLEWARE=middleware)

    def raw(self, sid: str) -> dict[str, Any] | None:
        with self.server.client() as client:
            document = client[DATABASE][self.collection].find_one({"_id": sid})
        return None if document is None else dict(document)

    def ids(self) -> list[str]:
        with self.server.client() as client:
            return sorted(d["_id"] for d in client[DATABASE][self.collection].find({}, {"_id": 1}))


@pytest.fixture
def peer(node_ready: None, mongo_server: MongoServer) -> Iterator[MongoPeer]:
    found = MongoPeer(mongo_server, new_collection())
    yield found
    for app in found.apps:
        app.stop()
    drop_collection(mongo_server, found.collection)


@pytest.fixture(scope="session")
def node_ready() -> None:
    from tests.express_peer import npm_ci, require_node

    require_node()
    npm_ci()


# --- sharing one session --------------------------------------------------------------


def test_the_counter_counts_visits_made_alternately_to_both_apps(peer: MongoPeer) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        assert browser.express(app, "/").json() == {"views": 1}
        assert browser.django("/count/").json() == {"views": 2}
        assert browser.express(app, "/").json() == {"views": 3}
        assert browser.django("/count/").json() == {"views": 4}
        assert isinstance(get_store(), ExpressMongoStore)
    document = peer.raw(browser.sid)
    assert document is not None and peer.ids() == [browser.sid]  # _id: the session id itself
    stored = json.loads(document["session"])  # connect-mongo's stringify: a JSON string
    assert next(iter(stored)) == "cookie"
    assert list(stored["cookie"]) == ["originalMaxAge", "expires", "httpOnly", "path"]
    assert stored["views"] == 4 and stored["_sessionkit"]["v"] >= 1
    expires = stored_expiry(document["expires"])
    assert expires is not None and close_to(expires, timezone.now() + timedelta(days=1), 60)


def test_a_change_on_either_side_is_seen_on_the_other(peer: MongoPeer) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.express(app, "/set/theme/dark")
        assert browser.django("/read/").json()["data"]["theme"] == "dark"  # type: ignore[index]
        browser.django("/set/lang/fr/")
        assert browser.express(app, "/read").json()["lang"] == "fr"  # type: ignore[index]
        browser.express(app, "/")  # Express writes its whole loaded copy back
        data = browser.django("/read/").json()["data"]  # type: ignore[index]
        assert data == {"theme": "dark", "lang": "fr", "views": 1}


def test_a_django_login_is_seen_by_express(peer: MongoPeer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.django("/login/alice/")
        me = browser.express(app, "/me")
        assert me.status == 200
        assert me.json() == {"user": None, "django_user_id": str(user.pk)}
        browser.express(app, "/")  # an Express save keeps Django's auth keys
        assert browser.django("/whoami/").json() == {"user": "alice"}


def test_an_express_login_is_seen_by_django_through_the_loader(peer: MongoPeer, user: Any) -> None:
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


def test_logout_on_either_side_ends_the_session_on_the_other(peer: MongoPeer, user: Any) -> None:
    app = peer.express([NEW])
    browser = Browser()
    with peer.django([NEW]):
        browser.django("/login/alice/")
        sid = browser.sid
        assert browser.express(app, "/logout").body == "bye"
        assert peer.raw(sid) is None
        browser.cookie = f"s%3A{sid}.x"  # even a browser that kept the old cookie
        assert browser.django("/whoami/").json() == {"user": None}
    other = Browser()
    other.express(app, "/login/alice")
    with peer.django([NEW], user_loader=True):
        assert other.django("/whoami/").json() == {"user": "alice"}
        other.django("/logout/")
    assert peer.ids() == []
    assert other.express(app, "/me").status == 401


def test_a_session_deleted_by_express_is_never_recreated_by_django(peer: MongoPeer) -> None:
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


def test_a_save_whose_reply_is_lost_is_counted_once(mongo_server: MongoServer) -> None:
    if mongo_server.external_url:
        pytest.skip("goes through a proxy to our own nx-27017")
    assert mongo_server.port is not None
    collection = new_collection()
    with proxy_to(mongo_server.port) as proxy:
        store = {
            "BACKEND": BACKEND,
            "LOCATION": f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true",
            "OPTIONS": {"DATABASE": DATABASE, "COLLECTION": collection},
        }
        try:
            with override_settings(SESSIONKIT={"COMPAT": "express", "STORE": store}):
                browser = Client()
                assert browser.get("/incr/").json() == {"views": 1}
                for expected in range(2, 5):
                    proxy.drop_reply_to(b"update")  # the write runs; its reply never comes
                    assert browser.get("/incr/").json() == {"views": expected}
                assert proxy.dropped["cut"] == 3
                assert browser.get("/read/").json()["data"]["views"] == 4
                get_store().close()
        finally:
            drop_collection(mongo_server, collection)


# --- the Store contract, in connect-mongo's layout -----------------------------------------


class TestExpressMongoStoreContract(StoreContract):
    @pytest.fixture
    def store(self, mongo_server: MongoServer) -> Iterator[ExpressMongoStore]:
        store = ExpressMongoStore(
            mongo_server.url, {"DATABASE": DATABASE, "COLLECTION": new_collection()}
        )
        yield store
        store.close()
        drop_collection(mongo_server, store.config.collection)

    def test_touch_moves_expiry_and_last_seen_but_not_data(self, store: Store) -> None:
        """connect-mongo's touch sets ``expires`` only: last_seen waits for a save."""
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
        """connect-mongo's touch keeps last_seen (above): the order changes at the next save."""
        now = timezone.now()
        older, saved = self.create(store, user_id="5", ip="10.9.9.9", last_seen=now)
        newer, _ = self.create(store, user_id="6", ip="10.9.9.9", last_seen=now)
        saved.last_seen = now + timedelta(seconds=5)
        store.save(older, saved, changes=Changes())
        for filters in ({}, {"signed_in": True}, {"ip": "10.9.9.9"}, {"ip": "10.9.0.0/16"}):
            assert [k for k, _ in store.list(**filters)] == [older, newer], filters

    def test_written_document_is_connect_mongos(
        self, store: ExpressMongoStore, mongo_server: MongoServer
    ) -> None:
        key, _ = self.create(store, data={"views": 1, "_auth_user_id": "7"})
        with mongo_server.client() as client:
            document = client[DATABASE][store.config.collection].find_one({"_id": key})
            indexes = list(client[DATABASE][store.config.collection].list_indexes())
        assert set(document) == {"_id", "session", "expires"}
        value = json.loads(document["session"])
        assert list(value) == ["cookie", "views", "_auth_user_id", "_sessionkit"]
        assert list(value["cookie"])[:2] == ["originalMaxAge", "expires"]
        assert value["cookie"]["expires"].endswith("Z")
        expires = stored_expiry(document["expires"])
        assert expires is not None and close_to(expires, timezone.now() + timedelta(hours=1), 2)
        ttl = [i for i in indexes if list(i["key"]) == ["expires"]]
        assert ttl and ttl[0]["expireAfterSeconds"] == 0  # connect-mongo's own TTL index

    def test_reserved_keys_are_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="reserved"):
            self.create(store, data={"cookie": 1})

    def test_a_document_connect_mongo_wrote_without_our_metadata_loads(
        self, store: ExpressMongoStore, mongo_server: MongoServer
    ) -> None:
        expires = timezone.now() + timedelta(hours=1)
        session = {"cookie": {"originalMaxAge": 3600000, "expires": None}, "user": {"a": 1}}
        with mongo_server.client() as client:
            client[DATABASE][store.config.collection].insert_many(
                [
                    {"_id": "plain", "session": json.dumps(session), "expires": expires},
                    {"_id": "no-expires", "session": json.dumps(session)},
                    {"_id": "gone", "session": json.dumps(session), "expires": timezone.now()},
                ]
            )
        loaded = store.load("plain")
        assert loaded is not None and loaded.data == {"user": {"a": 1}}
        assert close_to(loaded.expires_at, expires)
        assert store.load("no-expires") is not None  # connect-mongo: never expires
        assert store.load("gone") is None
        assert sorted(k for k, _ in store.list()) == ["no-expires", "plain"]


def test_check_names_connect_mongos_options() -> None:
    url = "mongodb://127.0.0.1:27017/app"
    assert ExpressMongoStore.check(url, {"TTL": 60, "AUTO_REMOVE": "interval"}) == []
    problems = ExpressMongoStore.check(url, {"TTL": 0, "PREFIX": "sess:"})
    assert any("'TTL'] must be a number of seconds > 0" in p for p in problems)
    assert any("'PREFIX'] is not a ExpressMongoStore option" in p for p in problems)
    store = ExpressMongoStore("mongodb://127.0.0.1:1", {})
    assert (store.config.database, store.config.collection, store.ttl) == (
        "test",
        "sessions",
        1209600,
    )


def test_compat_checks_point_to_the_mongodb_layout() -> None:
    from django_sessionkit.checks import check_settings

    mongo = {"BACKEND": "django_sessionkit.stores.mongo.MongoStore", "LOCATION": "mongodb://h"}
    with override_settings(SESSIONKIT={"COMPAT": "express", "STORE": mongo}):
        found = {m.id: m for m in check_settings()}
    assert "connect-mongo" in found["sessionkit.E027"].msg
    assert BACKEND in str(found["sessionkit.E027"].hint)
    assert "MongoDB _ids" in found["sessionkit.W002"].msg
    layout = {"BACKEND": BACKEND, "LOCATION": "mongodb://h"}
    with override_settings(SESSIONKIT={"STORE": layout}):
        found = {m.id: m for m in check_settings()}
    assert "MongoStore" in str(found["sessionkit.E027"].hint)
    with override_settings(SESSIONKIT={"COMPAT": "express", "STORE": layout}):
        assert [m.id for m in check_settings() if m.is_serious()] == []
