"""Session ids, keys and cookies: express-session's signed format and the Set-Cookie attributes.

Three forms of one session's identity:

* the **id**: random, the bearer secret (24 characters of base64url, 144 bits; 32
  characters, 192 bits, with ``COMPAT="express"`` as express-session makes them);
* the **signed cookie** ``s:<id>.<signature>``, where the signature is the standard
  base64 of HMAC-SHA256(secret, id) without the trailing ``=`` (cookie-signature
  1.0.x), URL-encoded the way ``encodeURIComponent`` does it: what browsers carry;
* the **compact cookie** ``<id><16 characters>``: the id followed by a truncated,
  domain-separated HMAC, at most 40 characters of ``[A-Za-z0-9_-]``. It is what a
  session made outside a request reports as ``session_key`` (Django's test client
  and Channels put ``session_key`` into the cookie), so it must work as a cookie and
  still fit where Django's keys fit.

A session made by the middleware for a request reports the bare id as
``session_key``: it fits a ``CharField(max_length=40)`` and is no cookie by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets as _secrets
import string
from collections.abc import Sequence
from datetime import datetime, timezone
from http.cookies import Morsel
from typing import Any
from urllib.parse import quote, unquote

from django.http import HttpRequest, HttpResponseBase
from django.utils.http import http_date

from django_sessionkit.conf import Settings, sessionkit_settings

#: Longest cookie value we look at; anything longer is ignored unparsed.
MAX_COOKIE_LENGTH = 4096

_ENCODE_SAFE = "-_.!~*'()"
#: encode_value() for ASCII: each character quote() would escape, as its %XX.
_ENCODE_TABLE = {
    code: f"%{code:02X}"
    for code in range(128)
    if not (chr(code).isalnum() or chr(code) in _ENCODE_SAFE)
}

#: What Django's own engines put in their unsigned cookies: 32 of [a-z0-9].
_DJANGO_KEY_CHARS = frozenset(string.ascii_lowercase + string.digits)
DJANGO_KEY_LENGTH = 32

#: What a ``session_key`` is made of, and its longest length (Django's own column is 40).
KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
MAX_KEY_LENGTH = 40
_KEY_PATTERN = re.compile(f"[A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}")
#: Random bytes in an id: 18 (24 characters, 144 bits); 24 (32 characters) as express's.
ID_BYTES = 18
EXPRESS_ID_BYTES = 24
#: Characters of HMAC in a compact cookie (96 bits), and the longest id that has one.
COMPACT_MAC_LENGTH = 16
MAX_COMPACT_ID_LENGTH = MAX_KEY_LENGTH - COMPACT_MAC_LENGTH
_COMPACT_DOMAIN = b"django-sessionkit compact cookie:"


def new_id(request: HttpRequest | None = None) -> str:
    """A fresh session id: 144 random bits as 24 characters of base64url (express's 192
    bits, 32 characters, with ``COMPAT="express"``). Also usable as ``GENID``."""
    express = sessionkit_settings.COMPAT == "express"
    return _secrets.token_urlsafe(EXPRESS_ID_BYTES if express else ID_BYTES)


def is_key(value: object) -> bool:
    """Whether ``value`` can be a ``session_key``: 1 to 40 characters of ``[A-Za-z0-9_-]``."""
    return isinstance(value, str) and _KEY_PATTERN.fullmatch(value) is not None


def hash_id(session_id: str) -> str:
    """The store key for a session id: SHA-256 hex. Stores never see the id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def signature(value: str, secret: str) -> str:
    mac = hmac.digest(secret.encode(), value.encode(), "sha256")  # one-shot, in C
    return base64.b64encode(mac).decode().rstrip("=")


def sign(value: str, secret: str) -> str:
    """``s:<value>.<signature>`` (not yet URL-encoded)."""
    return f"s:{value}.{signature(value, secret)}"


def unsign(signed: str, secrets: Sequence[str]) -> str | None:
    """The id inside a signed value, or ``None`` if no secret verifies it."""
    if not signed.startswith("s:"):
        return None
    body = signed[2:]
    value, dot, _ = body.rpartition(".")
    if not dot or not value:
        return None
    expected = body.encode()
    found = None
    for secret in secrets:  # try every secret, so timing does not tell which one matched
        if hmac.compare_digest(f"{value}.{signature(value, secret)}".encode(), expected):
            found = found or value
    return found


def encode_value(value: str) -> str:
    """URL-encode like JavaScript's ``encodeURIComponent``."""
    if value.isascii():  # the usual cookie: a table lookup per character, no UTF-8 step
        return value.translate(_ENCODE_TABLE)
    return quote(value, safe=_ENCODE_SAFE)


def decode_value(raw: str) -> str:
    """URL-decode only when the value contains ``%`` (as the ``cookie`` package does)."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return raw


def read_cookie(request: HttpRequest, name: str) -> str | None:
    """The first cookie called ``name`` in the request's Cookie header, decoded.

    The first pair wins, as in express-session (Django's own parser keeps the last).
    """
    header = request.META.get("HTTP_COOKIE", "")
    for pair in header.split(";"):
        key, eq, value = pair.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) > MAX_COOKIE_LENGTH:
                return None
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return decode_value(value)
    return None


def request_session_id(
    request: HttpRequest, raw: str | None, conf: Settings = sessionkit_settings
) -> tuple[str | None, bool]:
    """The session id a request's cookie carries and whether it is ``legacy`` (an unsigned
    key of Django's own engines, accepted only for an imported session).

    ``raw``: the first session cookie of the Cookie header (:func:`read_cookie`). When it
    is absent or not valid, ``request.COOKIES`` may still have one, set by a test's
    RequestFactory or rewritten by a middleware that ran before.
    """
    cookie_id = cookie_to_id(raw, conf)
    if cookie_id is None and (given := request.COOKIES.get(conf.NAME)):
        raw = decode_value(given)
        cookie_id = cookie_to_id(raw, conf)
    if cookie_id is None and conf.SIGNED and (old := legacy_django_id(raw)):
        return old, True
    return cookie_id, False


def may_be_legacy(
    request: HttpRequest | None, raw: str | None, conf: Settings = sessionkit_settings
) -> bool:
    """False when :func:`request_session_id` cannot find a legacy key (no HMAC needed)."""
    if not conf.SIGNED:
        return False
    if legacy_django_id(raw):
        return True
    given = None if request is None else request.COOKIES.get(conf.NAME)
    return bool(given and legacy_django_id(decode_value(given)))


def _compact_mac(session_id: str, secret: str) -> str:
    mac = hmac.digest(secret.encode(), _COMPACT_DOMAIN + session_id.encode(), "sha256")
    return base64.urlsafe_b64encode(mac).decode()[:COMPACT_MAC_LENGTH]


def compact(session_id: str, conf: Settings = sessionkit_settings) -> str | None:
    """The compact cookie for an id, or ``None`` when the id is too long for one."""
    if not (is_key(session_id) and len(session_id) <= MAX_COMPACT_ID_LENGTH):
        return None
    return session_id + _compact_mac(session_id, conf.SECRETS[0])


def uncompact(value: str, secrets: Sequence[str]) -> str | None:
    """The id inside a compact cookie, or ``None`` if no secret verifies it."""
    if not (is_key(value) and len(value) > COMPACT_MAC_LENGTH):
        return None
    session_id, mac = value[:-COMPACT_MAC_LENGTH], value[-COMPACT_MAC_LENGTH:].encode()
    found = None
    for secret in secrets:  # every secret, as in unsign()
        if hmac.compare_digest(_compact_mac(session_id, secret).encode(), mac):
            found = found or session_id
    return found


def cookie_to_id(value: str | None, conf: Settings = sessionkit_settings) -> str | None:
    """The session id carried by a cookie value, or ``None`` if it is absent or not valid.

    A signed cookie is either form, ``s:<id>.<sig>`` or compact; a bare id is never
    accepted from a cookie while ``SIGNED`` is on.
    """
    if not value:
        return None
    if conf.SIGNED:
        if value.startswith("s:"):
            return unsign(value, conf.SECRETS)
        return uncompact(value, conf.SECRETS)
    return value if _looks_like_id(value) else None


def key_to_id(value: str | None, conf: Settings = sessionkit_settings) -> str | None:
    """The session id named by a key given to the engine's API (``SessionStore(key)``,
    ``exists(key)``, ``delete(key)``, the admin, the commands).

    Accepted: a ``session_key`` (the bare id), either signed cookie form, URL-encoded or
    not. Unlike :func:`cookie_to_id`, a bare id is accepted: code that holds a
    ``session_key`` (copied into its own table, say) may name the session by it.
    """
    if not value or not isinstance(value, str):
        return None
    value = decode_value(value)
    if value.startswith("s:"):
        return cookie_to_id(value, conf)
    if conf.SIGNED and (found := uncompact(value, conf.SECRETS)):
        return found
    return value if _looks_like_id(value) else None


def id_to_key(session_id: str, conf: Settings = sessionkit_settings) -> str:
    """The value a session outside a request reports as ``session_key``: one that works
    as a cookie (the compact form when the id has one, else ``s:<id>.<sig>``)."""
    if not conf.SIGNED:
        return session_id
    return compact(session_id, conf) or id_to_cookie(session_id, conf)


def legacy_django_id(value: str | None) -> str | None:
    """The session key in a cookie written by Django's own engines, or ``None``.

    After ``importsessions`` such a key names an imported session; the
    middleware accepts it once and rotates it to a signed id of ours.
    """
    if value and len(value) == DJANGO_KEY_LENGTH and frozenset(value) <= _DJANGO_KEY_CHARS:
        return value
    return None


def id_to_cookie(session_id: str, conf: Settings = sessionkit_settings) -> str:
    """The cookie value for a session id (signed with the first secret unless SIGNED=False)."""
    return sign(session_id, conf.SECRETS[0]) if conf.SIGNED else session_id


def _looks_like_id(value: str) -> bool:
    return 8 <= len(value) <= 256 and value.isascii() and value.isprintable() and " " not in value


def is_secure(request: HttpRequest, conf: Settings = sessionkit_settings) -> bool:
    """Whether the request arrived over HTTPS, as the PROXY setting decides."""
    if conf.PROXY is None:
        return request.is_secure()
    if conf.PROXY:
        proto = request.META.get("HTTP_X_FORWARDED_PROTO", "")
        if proto.split(",")[0].strip().lower() == "https":
            return True
    return bool(request._get_scheme() == "https")  # type: ignore[attr-defined]


class SessionMorsel(Morsel[str]):
    """A Morsel that also knows ``Partitioned`` and ``Priority``.

    Python's own Morsel knows neither before 3.14; putting this one into
    ``response.cookies`` lets Django's test client and every middleware that
    reads ``response.cookies`` see the whole cookie.
    """

    _reserved = {
        **Morsel._reserved,  # type: ignore[attr-defined]
        "partitioned": "Partitioned",
        "priority": "Priority",
    }
    _flags = {*Morsel._flags, "partitioned"}  # type: ignore[attr-defined]


def set_session_cookie(
    response: HttpResponseBase,
    request: HttpRequest,
    value: str,
    expires_at: datetime | None,
    conf: Settings = sessionkit_settings,
) -> None:
    """Put the session cookie into ``response.cookies``.

    ``expires_at=None`` makes a browser-session cookie (no Max-Age, no Expires).
    """
    secure = is_secure(request, conf) if conf.SECURE == "auto" else conf.SECURE
    same_site = conf.SAME_SITE
    if same_site == "auto":
        same_site = "None" if is_secure(request, conf) else "Lax"
    morsel = SessionMorsel()
    morsel.set(conf.NAME, value, encode_value(value) if conf.SIGNED else value)
    attributes: dict[str, Any] = {"path": conf.PATH}
    if expires_at is not None:
        max_age = max(0, round((expires_at - datetime.now(timezone.utc)).total_seconds()))
        attributes["max-age"] = max_age
        attributes["expires"] = _http_date(expires_at)
    if conf.DOMAIN:
        attributes["domain"] = conf.DOMAIN
    if conf.HTTP_ONLY:
        attributes["httponly"] = True
    if secure:
        attributes["secure"] = True
    if same_site:
        attributes["samesite"] = same_site
    if conf.PARTITIONED:
        attributes["partitioned"] = True
    if conf.PRIORITY:
        attributes["priority"] = conf.PRIORITY
    # The names above are Morsel's own, in lower case: what its __setitem__ checks, per key.
    dict.update(morsel, attributes)
    response.cookies[conf.NAME] = morsel


_last_date: tuple[int, str] = (-1, "")


def _http_date(moment: datetime) -> str:
    """``http_date(moment.timestamp())``, made once per second (it shows whole seconds)."""
    global _last_date
    second = math.floor(moment.timestamp())
    last = _last_date
    if last[0] != second:
        last = _last_date = (second, http_date(second))
    return last[1]


def delete_session_cookie(response: HttpResponseBase, conf: Settings = sessionkit_settings) -> None:
    same_site = conf.SAME_SITE
    response.delete_cookie(
        conf.NAME,
        path=conf.PATH,
        domain=conf.DOMAIN,
        samesite=None if same_site == "auto" else same_site,  # type: ignore[arg-type]
    )


def cookie_would_be_dropped(request: HttpRequest, conf: Settings = sessionkit_settings) -> bool:
    """True when the cookie is Secure but this request is not (so it must not be sent)."""
    return conf.SECURE is True and not is_secure(request, conf)
