"""express-session's decisions and Django's rules, through the test client."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sessionkit import cookies
from django_sessionkit.models import Session
from django_sessionkit.stores import get_store

pytestmark = pytest.mark.django_db

NAME = "sessionid"


def set_cookie(response: object) -> str | None:
    morsel = response.cookies.get(NAME)  # type: ignore[attr-defined]
    return None if morsel is None else morsel.output(header="").strip()


def session_id(client: Client) -> str:
    raw = unquote(client.cookies[NAME].value)
    sid = cookies.unsign(raw, cookies.sessionkit_settings.SECRETS)
    assert sid is not None
    return sid


def stored_data(sid: str) -> dict[str, object] | None:
    record = get_store().load(cookies.hash_id(sid))
    return None if record is None else record.data


def test_untouched_session_no_cookie_no_row(client: Client) -> None:
    response = client.get("/plain/")
    assert response.status_code == 200
    assert set_cookie(response) is None
    assert "Cookie" not in response.get("Vary", "")
    assert Session.objects.count() == 0


def test_reading_a_new_empty_session_writes_nothing(client: Client) -> None:
    response = client.get("/read/")
    assert set_cookie(response) is None
    assert "Cookie" in response["Vary"]
    assert Session.objects.count() == 0


def test_visit_counter_in_express_cookie_format(client: Client) -> None:
    first = client.get("/count/")
    header = set_cookie(first)
    assert header is not None
    assert re.match(r"sessionid=s%3A[A-Za-z0-9_-]{24}\.[A-Za-z0-9%]+;", header)
    for attribute in ("HttpOnly", "Path=/", "Max-Age=1209600", "expires=", "SameSite=Lax"):
        assert attribute in header
    assert client.get("/count/").json() == {"views": 2}
    assert client.get("/count/").json() == {"views": 3}
    sid = session_id(client)
    assert stored_data(sid) == {"views": 3}
    assert Session.objects.count() == 1


def test_a_change_inside_nested_data_is_saved(client: Client) -> None:
    client.get("/nested/")
    client.get("/nested/")
    assert client.get("/nested/").json() == {"items": [0, 1, 2]}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"), id="tampered"),
        pytest.param(lambda v: v[:20], id="truncated"),
        pytest.param(lambda v: unquote(v)[2:].split(".")[0], id="unsigned"),
        pytest.param(lambda v: v + "x" * 5000, id="over-long"),
        # A browser sends UTF-8 bytes; WSGI hands them over decoded as latin-1.
        pytest.param(lambda v: "s:café✓.sïg".encode().decode("latin-1"), id="non-ascii"),
        pytest.param(lambda v: "%%%zz%E0%A4%A", id="percent-garbage"),
        pytest.param(
            lambda v: cookies.encode_value(cookies.sign(unquote(v)[2:].split(".")[0], "retired")),
            id="retired-secret",
        ),
    ],
)
def test_bad_cookies_get_a_fresh_session_and_leave_the_original_intact(
    client: Client, mangle: object
) -> None:
    client.get("/count/")
    client.get("/count/")
    original = session_id(client)
    good = client.cookies[NAME].value

    attacker = Client()
    attacker.cookies[NAME] = mangle(good)  # type: ignore[operator]
    response = attacker.get("/count/")
    assert response.status_code == 200
    assert response.json() == {"views": 1}
    assert session_id(attacker) != original
    assert stored_data(original) == {"views": 2}


def test_a_correctly_signed_unknown_id_is_never_adopted(client: Client) -> None:
    chosen = "attacker-chosen-id-0000000000000"
    client.cookies[NAME] = cookies.encode_value(cookies.id_to_cookie(chosen))
    response = client.get("/count/")
    assert response.json() == {"views": 1}
    assert session_id(client) != chosen
    assert stored_data(chosen) is None


def test_stale_cookie_is_deleted_when_the_session_stays_empty(client: Client) -> None:
    client.cookies[NAME] = cookies.encode_value(cookies.id_to_cookie("x" * 43))
    response = client.get("/read/")
    header = set_cookie(response)
    assert header is not None and "Max-Age=0" in header


def test_the_database_never_holds_a_raw_id(client: Client) -> None:
    for _ in range(3):
        Client().get("/count/")
    client.get("/count/")
    sid = session_id(client)
    dump = repr(list(Session.objects.values_list()))
    assert sid not in dump
    assert cookies.hash_id(sid) in dump


def test_no_save_on_a_5xx_response(client: Client) -> None:
    response = client.get("/error/")
    assert response.status_code == 500
    assert set_cookie(response) is None
    assert Session.objects.count() == 0


def test_flush_deletes_the_row_and_the_cookie(client: Client) -> None:
    client.get("/count/")
    sid = session_id(client)
    response = client.get("/flush/")
    assert "Max-Age=0" in (set_cookie(response) or "")
    assert stored_data(sid) is None


def test_regenerate_issues_a_new_id_and_deletes_the_old(client: Client) -> None:
    client.get("/count/")
    old = session_id(client)
    response = client.get("/regenerate/")
    assert set_cookie(response) is not None
    new = session_id(client)
    assert new != old
    assert stored_data(old) is None
    assert stored_data(new) == {}


def test_a_session_deleted_meanwhile_is_not_written_back(client: Client) -> None:
    client.get("/count/")
    sid = session_id(client)

    from django.urls import path

    from tests.testapp import urls

    def revoke_then_write(request):  # type: ignore[no-untyped-def]
        request.session["views"]  # loaded
        get_store().delete(cookies.hash_id(sid))  # a logout in another request
        request.session["views"] = 99
        from django.http import HttpResponse

        return HttpResponse("ok")

    urls.urlpatterns.append(path("race/", revoke_then_write))
    try:
        response = client.get("/race/")
    finally:
        urls.urlpatterns.pop()
    assert response.status_code == 400  # SessionInterrupted, as Django does
    assert stored_data(sid) is None


@override_settings(SESSIONKIT={"SAVE_UNINITIALIZED": True})
def test_save_uninitialized_saves_and_cookies_untouched_sessions(client: Client) -> None:
    response = client.get("/plain/")
    assert set_cookie(response) is not None
    assert stored_data(session_id(client)) == {}
    # The next request carries the cookie: no second session.
    assert set_cookie(client.get("/plain/")) is None
    assert Session.objects.count() == 1


@override_settings(SESSIONKIT={"ROLLING": True})
def test_rolling_resends_the_cookie_on_an_unmodified_read(client: Client) -> None:
    client.get("/count/")
    before = Session.objects.get()
    response = client.get("/read/")
    assert set_cookie(response) is not None
    after = Session.objects.get()
    assert after.version == before.version  # touched, not rewritten
    assert after.last_seen > before.last_seen


def test_without_rolling_an_unmodified_read_sends_no_cookie(client: Client) -> None:
    client.get("/count/")
    assert set_cookie(client.get("/read/")) is None


@override_settings(SESSIONKIT={"RESAVE": True})
def test_resave_rewrites_an_unmodified_session(client: Client) -> None:
    client.get("/count/")
    before = Session.objects.get()
    response = client.get("/read/")
    assert set_cookie(response) is None  # only ROLLING re-sends the cookie
    assert Session.objects.get().version == before.version + 1


@override_settings(SESSIONKIT={"COOKIE": {"MAX_AGE": None}})
def test_browser_session_cookie(client: Client) -> None:
    header = set_cookie(client.get("/count/")) or ""
    assert "expires" not in header.lower() and "Max-Age" not in header
    # Loaded and modified, no rolling: express sends no new cookie for a browser-session cookie.
    assert set_cookie(client.get("/count/")) is None
    assert client.get("/count/").json() == {"views": 3}


def test_set_expiry_is_honoured(client: Client) -> None:
    response = client.get("/expiry/60/")
    header = set_cookie(response) or ""
    assert re.search(r"Max-Age=(59|60)\b", header)
    row = Session.objects.get()
    assert 55 <= (row.expires_at - row.last_seen).total_seconds() <= 61


@pytest.mark.parametrize(("unset", "survives"), [("keep", True), ("destroy", False)])
def test_unset(client: Client, unset: str, survives: bool) -> None:
    client.get("/count/")
    sid = session_id(client)
    with override_settings(SESSIONKIT={"UNSET": unset}):
        client.get("/unset/")
    assert (stored_data(sid) is not None) is survives


@override_settings(SESSIONKIT={"GENID": "tests.test_middleware.fixed_prefix_genid"})
def test_genid_names_the_session(client: Client) -> None:
    client.get("/count/")
    assert session_id(client).startswith("custom-")


def fixed_prefix_genid(request: object) -> str:
    assert request is not None
    return "custom-" + cookies.new_id()


@override_settings(SESSIONKIT={"COOKIE": {"SECURE": True}})
def test_secure_cookie_over_http_is_neither_sent_nor_saved(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.get("/count/")
    assert set_cookie(response) is None
    assert Session.objects.count() == 0
    assert "Secure" in caplog.text and "PROXY" in caplog.text


@override_settings(SESSIONKIT={"COOKIE": {"SECURE": True}, "PROXY": True})
def test_secure_cookie_behind_a_trusted_tls_proxy(client: Client) -> None:
    response = client.get("/count/", HTTP_X_FORWARDED_PROTO="https")
    assert "Secure" in (set_cookie(response) or "")


@override_settings(SESSIONKIT={"SECRET": ["new-secret", "old-secret"]})
def test_secret_rotation_resigns_on_the_next_set_cookie(client: Client) -> None:
    with override_settings(SESSIONKIT={"SECRET": "old-secret"}):
        client.get("/count/")
    old_value = unquote(client.cookies[NAME].value)
    sid = cookies.unsign(old_value, ["old-secret"])
    assert set_cookie(client.get("/read/")) is None  # accepted, not re-sent unmodified
    client.get("/count/")
    new_value = unquote(client.cookies[NAME].value)
    assert cookies.unsign(new_value, ["new-secret"]) == sid
    with override_settings(SESSIONKIT={"SECRET": "new-secret"}):
        assert client.get("/count/").json() == {"views": 3}
    retired = Client()
    retired.cookies[NAME] = cookies.encode_value(old_value)
    with override_settings(SESSIONKIT={"SECRET": "new-secret"}):
        assert retired.get("/count/").json() == {"views": 1}


@override_settings(SESSIONKIT={"NAME": "connect.sid", "SIGNED": False})
def test_unsigned_mode_and_custom_name(client: Client) -> None:
    response = client.get("/count/")
    value = response.cookies["connect.sid"].value
    assert not value.startswith("s") or "." not in value
    assert client.get("/count/").json() == {"views": 2}


def test_metadata_ip_and_user_agent(client: Client) -> None:
    client.get("/count/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Agent/" + "x" * 900)
    row = Session.objects.get()
    assert row.ip == "203.0.113.9"
    assert row.user_agent.startswith("Agent/") and len(row.user_agent) == 512


@override_settings(SESSIONKIT={"CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR", "TRUSTED_PROXIES": 1})
def test_client_ip_from_a_trusted_proxy_header(client: Client) -> None:
    client.get(
        "/count/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7"
    )  # the client forged the first entry; our one proxy appended the second
    assert Session.objects.get().ip == "198.51.100.7"


def test_x_forwarded_for_is_ignored_by_default(client: Client) -> None:
    client.get("/count/", REMOTE_ADDR="192.0.2.5", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert Session.objects.get().ip == "192.0.2.5"


cookie_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters=";\r\n\x00"), max_size=200
)


@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(value=cookie_text)
def test_any_cookie_value_gives_200_and_a_fresh_session(value: str) -> None:
    client = Client(HTTP_COOKIE=f"{NAME}={value}")
    response = client.get("/count/")
    assert response.status_code == 200
    assert response.json() == {"views": 1}
