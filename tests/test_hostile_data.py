"""Hostile data shapes: values nested deep, huge numbers in query strings, odd unicode.

On every store: a save refuses a value nested deeper than ``MAX_DEPTH`` with
``SessionDataError``; the admin list, detail and user pages render whatever is already
stored, old data deeper than the limit included, with no recursion; numbers taken from a
query string never give a 500; every page with session details is ``private, no-store``.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sessionkit import masking
from django_sessionkit.admin_views import moment
from django_sessionkit.conf import DEFAULT_MAX_DEPTH
from django_sessionkit.engine import SessionDataError, SessionStore, store_key
from django_sessionkit.stores.base import Store
from tests.test_admin import FIREFOX, LIST, REVOKE, browser, stored, user

pytestmark = pytest.mark.django_db

PAGE = "/account/sessions/"
FORM = "application/x-www-form-urlencoded"
BIG = "9223372036854775808"  # 2**63: past every integer column (SQLite refuses to be asked)


def nest(depth: int, leaf: Any = "bottom", *, key: str | None = None) -> Any:
    """A value ``depth`` levels deep (lists, or dicts under ``key``), built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value] if key is None else {key: value}
    return value


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


@pytest.fixture
def admin(admin_user: Any) -> Client:
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_USER_AGENT=FIREFOX)
    client.force_login(admin_user)
    return client


def settings_with(**values: Any) -> Any:
    from django.conf import settings as django_settings

    return override_settings(SESSIONKIT={**django_settings.SESSIONKIT, **values})


# --- (1) the depth limit at save --------------------------------------------------------


def test_the_default_limit_is_100_levels(store: Store) -> None:
    assert DEFAULT_MAX_DEPTH == 100
    session = SessionStore()
    session["ok"] = nest(100)
    session["dicts"] = nest(100, key="k")
    session.save()
    assert SessionStore(session.session_key)["ok"] == nest(100)
    session["deep"] = nest(101)
    with pytest.raises(SessionDataError) as raised:
        session.save()
    message = str(raised.value)
    assert "'deep'" in message and "100" in message and "MAX_DEPTH" in message
    assert "deep" not in SessionStore(session.session_key)  # nothing was written


@pytest.mark.parametrize("depth", [490, 990, 5000])
@pytest.mark.parametrize("max_depth", [DEFAULT_MAX_DEPTH, None])
def test_a_value_nested_past_python_s_own_limit_is_a_session_data_error(
    store: Store, depth: int, max_depth: int | None
) -> None:
    with settings_with(MAX_DEPTH=max_depth):
        session = SessionStore()
        session["fine"] = 1
        session.save()
        session["deep"] = nest(depth, key="k")
        if max_depth is None and depth == 490:
            session.save()  # no limit of our own, and JSON can still hold it
            assert SessionStore(session.session_key)["deep"] == nest(depth, key="k")
            return
        with pytest.raises(SessionDataError, match="'deep'") as raised:
            session.save()  # not a RecursionError
    message = str(raised.value)
    if max_depth is None:
        assert "nested too deep for JSON to encode" in message
    else:
        assert "nested more than 100 levels deep, over SESSIONKIT['MAX_DEPTH'] = 100" in message
    assert "nothing was saved" in message
    assert dict(SessionStore(session.session_key).items()) == {"fine": 1}


async def test_the_async_save_checks_the_depth_too(store: Store) -> None:
    session = SessionStore()
    session["deep"] = nest(101)
    with pytest.raises(SessionDataError, match="'deep'"):
        await session.asave()


def test_max_depth_is_configurable(store: Store) -> None:
    with settings_with(MAX_DEPTH=3):
        session = SessionStore()
        session["cart"] = {"items": [{"sku": 1}]}  # 3 levels
        session.save()
        session["cart"]["items"][0]["tags"] = ["x"]  # 4 levels, changed in place
        with pytest.raises(SessionDataError, match=r"'cart'.*MAX_DEPTH.*3"):
            session.save()
    with settings_with(MAX_DEPTH=None):
        session = SessionStore()
        session["deep"] = nest(500)
        session.save()
        assert SessionStore(session.session_key)["deep"] == nest(500)


def test_data_stored_deeper_than_the_limit_still_loads_and_saves(store: Store) -> None:
    """A value saved before the limit (or under a higher one) is kept as it is; only a
    value a request changes is checked."""
    with settings_with(MAX_DEPTH=None):
        session = SessionStore()
        session["old"] = nest(300)
        session.save()
    again = SessionStore(session.session_key)
    assert again["old"] == nest(300)
    again["views"] = 1
    again.save()  # "old" did not change: not checked again
    again = SessionStore(session.session_key)
    assert again["views"] == 1 and again["old"] == nest(300)
    again["old"] = nest(200)
    with pytest.raises(SessionDataError, match="'old'"):
        again.save()


def test_the_depth_check_does_not_recurse() -> None:
    from django_sessionkit.engine import _deeper_than

    very_deep = nest(sys.getrecursionlimit() * 20, key="k")
    assert _deeper_than(very_deep, 100)
    assert not _deeper_than(nest(100), 100)
    assert _deeper_than(nest(101), 100)
    value = {"a": [1, {"b": []}], "c": "x" * 500}  # a dict, a list, a dict, a list: 4 levels
    assert not _deeper_than(value, 4) and _deeper_than(value, 3)
    assert not _deeper_than("x" * 500, 1) and not _deeper_than([], 1)


# --- (2) pages render deep data --------------------------------------------------------


def test_masking_and_pretty_printing_do_not_recurse() -> None:
    depth = sys.getrecursionlimit() * 20
    value = {"top": nest(depth, {"password": "hunter2", "x": 1}, key="k"), "token": "t"}
    masked = masking.mask(value)
    assert masked["token"] == masking.MASK
    inner = masked["top"]
    for _ in range(depth):
        inner = inner["k"]
    assert inner == {"password": masking.MASK, "x": 1}
    started = time.process_time()
    text = masking.pretty(value)
    assert time.process_time() - started < 2
    assert masking.DEEPER in text and "hunter2" not in text
    assert len(text) < 100_000


def test_pretty_is_json_dumps_for_ordinary_data() -> None:
    import json

    data = {
        "b": [1, 2.5, None, True, {"z": [], "a": {}}],
        "a": {"nested": {"list": [[1], ["é", "\u0000", '"q"']]}, "n": -(10**30)},
        "reset_password": "hunter2",
        "empty": "",
        "nan": float("nan"),
    }
    expected = json.dumps(
        masking.mask(data), indent=2, sort_keys=True, ensure_ascii=False, default=str
    )
    assert masking.pretty(data) == expected


def test_pretty_shows_100_levels_and_marks_the_ones_it_leaves_out() -> None:
    assert masking.SHOWN_DEPTH == DEFAULT_MAX_DEPTH == 100
    shown = masking.pretty({"deep": nest(100, "bottom"), "d": nest(100, "end", key="k")})
    assert "bottom" in shown and "end" in shown and masking.DEEPER not in shown
    cut = masking.pretty({"deep": nest(101, "bottom"), "d": nest(101, "end", key="k")})
    assert "bottom" not in cut and "end" not in cut
    assert f"[{masking.DEEPER}]" in cut and f"{{{masking.DEEPER}}}" in cut


@pytest.mark.parametrize("depth", [150, 490, 900])
def test_pages_render_data_stored_deeper_than_the_limit(
    store: Store, admin: Client, depth: int
) -> None:
    alice = user("alice")
    secret = nest(depth, {"api_token": "tok-123", "note": "deep-leaf"}, key="k")
    key = stored(store, user_id=str(alice.pk), data={"_auth_user_id": str(alice.pk), "x": secret})
    started = time.process_time()
    response = admin.get(f"{LIST}{key[:12]}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert masking.DEEPER in page and "tok-123" not in page
    assert admin.get(LIST).status_code == 200
    owner = Client()
    owner.force_login(alice)
    assert owner.get(PAGE).status_code == 200
    assert time.process_time() - started < 10


def test_a_row_nested_deeper_than_json_can_parse_is_a_corrupt_session(
    store: Store, admin: Client
) -> None:
    """JSON nested past what the parser follows (~1000 levels), written into the store by
    hand or by another app: the session is unreadable (treated as missing), never a 500."""
    from django_sessionkit.models import Session
    from django_sessionkit.stores.database import DatabaseStore
    from django_sessionkit.stores.redis import connection

    key = stored(store)
    deep = "[" * 5000 + "]" * 5000
    if isinstance(store, DatabaseStore):
        Session.objects.using(store.alias).filter(key=key).update(data='{"x":' + deep + "}")
    elif type(store).__name__ == "MongoStore":  # data.x holds the value's JSON text
        from django_sessionkit.stores.mongo import connection as mongo

        database = mongo.sync_client(store.config)[store.config.database]  # type: ignore[attr-defined]
        database[store.config.collection].update_one(  # type: ignore[attr-defined]
            {"_id": key}, {"$set": {"data.x": deep}}
        )
    else:
        client = connection.sync_client(store.config)  # type: ignore[attr-defined]
        client.hset(store.session_key(key), "d:x", deep)  # type: ignore[attr-defined]
    assert store.load(key) is None
    assert admin.get(LIST).status_code == 200
    assert admin.get(f"{LIST}{key[:12]}/").status_code == 404


@override_settings(DEBUG=True)
def test_with_debug_on_the_detail_page_of_deep_data_is_quick(store: Store, admin: Client) -> None:
    """Before: a RecursionError, and Django's debug 500 page then took 50 s of CPU."""
    key = stored(store, data={"x": nest(490, key="k")})
    started = time.process_time()
    assert admin.get(f"{LIST}{key[:12]}/").status_code == 200
    assert time.process_time() - started < 5


# --- (3) numbers from the query string ---------------------------------------------------

HOSTILE_NUMBERS = [
    BIG,
    "-" + BIG,
    "9" * 40,
    "9" * 5000,  # past int()'s 4300-digit limit
    "-1",
    "0",
    "1e5",
    "0x10",
    " 7 ",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it
    "1_000",
    "\x00",
    "%00",
    "nan",
    "",
]


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_numbers_in_the_admin_query_string_never_give_a_500(
    store: Store, admin: Client, number: str
) -> None:
    browser("alice")
    ref = store_key("x" * 24)[:12]
    for url, params in [
        (LIST, {"user": number}),
        (LIST, {"n": number, "after": f"{number}.{ref}"}),
        (LIST, {"after": f"{number}.{ref}", "back": f"{number}.{ref},{number}"}),
        (LIST, {"q": number}),
        (LIST, {"user": number, "q": number, "who": "signed-in", "active": "day"}),
        (f"{LIST}{ref}/", {"s": number, "u": number}),
        (f"{LIST}{ref}/", {"hint_seen": f"{ref}.{number}", "hint_users": number}),
    ]:
        response = admin.get(url, params)
        assert response.status_code in (200, 302, 400, 404), (url, params, response.status_code)
    for data in (
        {"action": "user", "user": number},
        {"action": "selected", "session": ref, "hint_users": number, "hint_seen": number},
    ):
        response = admin.post(REVOKE, data)
        assert response.status_code in (200, 302, 400), (data, response.status_code)


def test_a_user_filter_out_of_range_is_an_empty_list(store: Store, admin: Client) -> None:
    browser("alice")
    for number in (BIG, "-" + BIG, "9" * 40):
        response = admin.get(LIST, {"user": number})
        assert response.status_code == 200
        assert response.context["rows"] == []
        assert f"user {number}" in response.content.decode()


def test_a_user_id_is_taken_only_as_the_store_writes_it(store: Store, admin: Client) -> None:
    alice = browser("alice")
    pk = user("alice").pk
    assert admin.get(LIST, {"user": str(pk)}).context["rows"][0].user.username == "alice"
    for lookalike in (f"0{pk}", f"+{pk}", f"{pk}.0", "\u0663" if pk == 3 else f"{pk}_"):
        response = admin.get(LIST, {"user": lookalike})
        assert response.context["rows"] == [] and response.context["filtered_user"] is None
    assert alice  # still signed in: nothing above ended anything


def test_a_stored_user_id_out_of_range_shows_as_a_user_id(store: Store, admin: Client) -> None:
    key = stored(store, user_id=BIG)
    response = admin.get(LIST)
    assert response.status_code == 200
    assert f"user {BIG} (deleted)" in response.content.decode()
    assert admin.get(f"{LIST}{key[:12]}/").status_code == 200


@pytest.mark.parametrize("value", ["-1", "-" + BIG, BIG, "9" * 30, "1e3"])
def test_a_paging_position_out_of_range_starts_at_the_top(
    store: Store, admin: Client, value: str
) -> None:
    now = timezone.now()
    for i in range(3):
        stored(store, last_seen=now - timedelta(seconds=i + 1))
    first = admin.get(LIST)
    ref = first.context["rows"][0].ref
    seen = first.context["rows"][0].seen
    response = admin.get(LIST, {"n": value, "after": f"{seen}.{ref}"})
    assert response.status_code == 200
    assert response.context["listing"].start == 0


def test_a_time_out_of_range_is_ignored() -> None:
    assert moment("-1") is None
    assert moment(str(10**17)) is None  # past year 3000
    assert moment("9" * 5000) is None
    assert moment("\u0661\u0662") is None  # digits, but not ASCII ones
    assert moment("1700000000000000") is not None


# --- (4) Cache-Control ----------------------------------------------------------------


def test_every_page_with_session_details_is_private_and_not_stored(
    store: Store, admin: Client
) -> None:
    alice = browser("alice")
    key = stored(store)
    responses = {
        "user page": alice.get(PAGE),
        "admin list": admin.get(LIST),
        "admin detail": admin.get(f"{LIST}{key[:12]}/"),
        "revoke confirmation": admin.post(REVOKE, {"action": "selected", "session": key[:12]}),
    }
    for name, response in responses.items():
        assert response.status_code == 200, name
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (name, response["Cache-Control"])


# --- (5) arbitrary query strings and data -----------------------------------------------

HYPOTHESIS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
numberish = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(HOSTILE_NUMBERS),
    any_text,
)
PARAMS = ["user", "n", "after", "back", "q", "who", "active", "s", "u", "hint_users", "hint_seen"]


@st.composite
def query_strings(draw: st.DrawFn, ref: str, seen: str) -> list[tuple[str, str]]:
    """Pairs for a query string: our parameter names or any, with numbers, cursors, refs,
    filter choices or any text."""
    value = st.one_of(
        numberish,
        st.sampled_from(["signed-in", "anonymous", "hour", "day", ref, f"{seen}.{ref}"]),
        st.builds("{}.{}".format, numberish, st.sampled_from([ref, "0" * 12, "", ref.upper()])),
    )
    name = st.sampled_from(PARAMS) | any_text
    return draw(st.lists(st.tuples(name, value), max_size=6))


@HYPOTHESIS
@given(data=st.data())
def test_arbitrary_query_strings_never_give_a_5xx(
    store: Store, admin: Client, data: st.DataObject
) -> None:
    key = stored(store, user_id=str(user("alice").pk))
    ref = key[:12]
    seen = admin.get(LIST).context["rows"][0].seen
    pairs = data.draw(query_strings(ref, seen))
    path = data.draw(st.sampled_from([LIST, f"{LIST}{ref}/", f"{LIST}{'0' * 12}/", PAGE]))
    response = admin.get(path, pairs)
    assert response.status_code < 500, (path, pairs)
    form = [*pairs, ("action", data.draw(st.sampled_from(["selected", "user", "x"])))]
    form = [(name, value) for name, value in form if name != "confirm"]  # nothing ends
    response = admin.post(REVOKE, urlencode(form), content_type=FORM)
    assert response.status_code < 500, form


MARK = "sensitive-7f3a"  # stored under sensitive key names only: never on a page
json_key = st.one_of(
    st.sampled_from(["password", "API_KEY", "x-Token", "otp", "secretary", "cart", "", "0"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.sampled_from([2**63, -(2**63) - 1, 10**4000, -(10**4000)]),  # 4001 digits: JSON takes it
    st.floats(),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_key, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """Any value, at the bottom of up to 900 lists or dicts (Python's JSON parses ~990)."""
    depth = draw(st.integers(min_value=0, max_value=900))
    leaf = draw(json_value)
    key = draw(st.none() | json_key)
    return nest(depth, leaf, key=key)


@st.composite
def session_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = draw(st.dictionaries(json_key, json_value | deep_values(), max_size=5))
    secret_at = draw(st.integers(min_value=0, max_value=150))
    name = draw(st.sampled_from(["password", "apiToken", "SECRET_answer", "_auth_user_hash"]))
    data["profile"] = nest(secret_at, {name: MARK, "shown": [MARK[:3]]}, key="k")
    data[name] = {"also": MARK}
    return data


user_ids = st.one_of(
    st.none(),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.sampled_from([BIG, "-" + BIG, "\u0663", "007", "1_0", " 1", "x" * 64]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=64),
)


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(json_key, json_value, max_size=6))
def test_pretty_is_json_dumps_of_the_masked_data(data: dict[str, Any]) -> None:
    import json

    expected = json.dumps(
        masking.mask(data), indent=2, sort_keys=True, ensure_ascii=False, default=str
    )
    assert masking.pretty(data) == expected


@HYPOTHESIS
@given(
    data=session_data(),
    user_id=user_ids,
    user_agent=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")),
)
def test_arbitrary_stored_data_never_gives_a_5xx(
    store: Store, admin: Client, data: dict[str, Any], user_id: str | None, user_agent: str
) -> None:
    owner = user("alice")
    key = stored(store, user_id=user_id or None, data=data, user_agent=user_agent[:1024])
    own = stored(
        store,
        user_id=str(owner.pk),
        data={**data, "_auth_user_id": str(owner.pk)},
        user_agent=user_agent[:1024],
    )
    try:
        for path in (LIST, LIST + "?who=signed-in", f"{LIST}{key[:12]}/", f"{LIST}{own[:12]}/"):
            response = admin.get(path)
            assert response.status_code == 200, path
            assert MARK not in response.content.decode(), path
        if user_id:
            response = admin.get(LIST, {"user": user_id})
            assert response.status_code == 200
        response = admin.post(REVOKE, {"action": "selected", "session": [key[:12], own[:12]]})
        assert response.status_code == 200
        client = Client()
        client.force_login(owner)
        assert client.get(PAGE).status_code == 200
    finally:
        store.delete(key)
        store.delete(own)
