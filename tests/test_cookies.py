"""Cookie signing in express-session's format, and the Set-Cookie attributes."""

from __future__ import annotations

import re

from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from hypothesis import given
from hypothesis import strategies as st

from django_sessionkit import cookies

# Observed from express-session 1.19 with secret "s3cret-one" (see shared/express-session.md).
EXPRESS_ID = "U2tot2dmNvWbL1UhRMVX42EUYDO39N0S"
EXPRESS_COOKIE = (
    "s%3AU2tot2dmNvWbL1UhRMVX42EUYDO39N0S.Ww%2FpWIYay7iILuzocTYljRQk4HGzcjqRw62BBk5eiNQ"
)


def test_signature_matches_express_byte_for_byte() -> None:
    assert cookies.encode_value(cookies.sign(EXPRESS_ID, "s3cret-one")) == EXPRESS_COOKIE


def test_unsign_express_cookie_with_rotation() -> None:
    raw = cookies.decode_value(EXPRESS_COOKIE)
    assert cookies.unsign(raw, ["s3cret-one"]) == EXPRESS_ID
    assert cookies.unsign(raw, ["new-secret", "s3cret-one"]) == EXPRESS_ID
    assert cookies.unsign(raw, ["new-secret"]) is None


def test_unsign_rejects_bad_values() -> None:
    good = cookies.sign("abcdefgh", "k")
    assert cookies.unsign(good, ["k"]) == "abcdefgh"
    for bad in [
        good[:-1],
        good + "x",
        good[2:],
        "s:",
        "s:.",
        "s:abc",
        "s:" + good[2:].replace(".", ""),
    ]:
        assert cookies.unsign(bad, ["k"]) is None, bad


def test_new_ids_carry_144_bits_and_fit_a_session_key_column() -> None:
    ids = {cookies.new_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", i) for i in ids)


@override_settings(SESSIONKIT={"COMPAT": "express"})
def test_express_mode_ids_carry_192_bits_as_express_makes_them() -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", cookies.new_id())


def test_hash_id_is_sha256_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", cookies.hash_id("x"))


@given(st.text(max_size=300))
def test_unsign_never_raises(value: str) -> None:
    assert cookies.unsign(value, ["k"]) in (None, value[2:].rpartition(".")[0])


def test_first_cookie_of_a_name_wins() -> None:
    request = RequestFactory().get("/", HTTP_COOKIE="sessionid=first; other=1; sessionid=second")
    assert cookies.read_cookie(request, "sessionid") == "first"


def _set_cookie_header(**cookie: object) -> str:
    request = RequestFactory().get("/")
    response = HttpResponse()
    with override_settings(SESSIONKIT={"COOKIE": cookie}):
        from django.utils import timezone

        cookies.set_session_cookie(
            response, request, "s:abc.d/e+f", timezone.now() + timezone.timedelta(seconds=60)
        )
    return response.cookies["sessionid"].output(header="").strip()


def test_set_cookie_has_every_attribute_in_canonical_case() -> None:
    header = _set_cookie_header(
        SAME_SITE="strict",
        PRIORITY="HIGH",
        PARTITIONED=True,
        SECURE=True,
        DOMAIN="example.test",
        PATH="/app",
    )
    assert header.startswith("sessionid=s%3Aabc.d%2Fe%2Bf;")
    for part in [
        "Domain=example.test",
        "Path=/app",
        "HttpOnly",
        "Secure",
        "Partitioned",
        "Priority=High",
        "SameSite=Strict",
        "Max-Age=59",
        "expires=",
    ]:
        assert part in header.replace("Max-Age=60", "Max-Age=59"), (part, header)


def test_set_cookie_secure_auto_follows_the_request() -> None:
    assert "Secure" not in _set_cookie_header(SECURE="auto")
    request = RequestFactory().get("/", secure=True)
    response = HttpResponse()
    with override_settings(SESSIONKIT={"COOKIE": {"SECURE": "auto", "SAME_SITE": "auto"}}):
        cookies.set_session_cookie(response, request, "v", None)
    header = response.cookies["sessionid"].output(header="")
    assert "Secure" in header and "SameSite=None" in header
    assert "expires" not in header.lower() and "Max-Age" not in header


def test_proxy_setting_decides_what_is_secure() -> None:
    request = RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="HTTPS , http")
    with override_settings(SESSIONKIT={"PROXY": True}):
        assert cookies.is_secure(request)
    with override_settings(SESSIONKIT={"PROXY": False}):
        assert not cookies.is_secure(request)
    with override_settings(SESSIONKIT={}):
        assert not cookies.is_secure(request)  # Django's SECURE_PROXY_SSL_HEADER is unset
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        request = RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https")
        assert cookies.is_secure(request)
