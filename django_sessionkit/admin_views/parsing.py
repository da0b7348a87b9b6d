"""What the admin pages take from URLs, query strings and forms: session refs, the IP
search box, numbers and times, each checked for range."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django_sessionkit.conf import sessionkit_settings
from django_sessionkit.stores.base import (
    IPNetwork,
    SessionRecord,
    from_us,
    to_us,
)

if TYPE_CHECKING:
    pass


REF_LENGTH = 12
PAGE_SIZE = 50
#: The shortest text the search box looks up as a session_key (GENID's shortest id).
MIN_KEY_SEARCH = 16

#: Users a username/email search may match; more asks for a narrower search.
MAX_SEARCH_USERS = 20
#: Sessions examined, as a last resort, to find a session by its ref.
RESOLVE_SCAN_LIMIT = 5000
#: Pages whose start the "Previous" link remembers.
MAX_BACK = 20
#: The longest user id a store keeps (``Session.user_id``); a longer one matches no session.
MAX_USER_ID = 64
#: Positions past this in ``?n=`` are taken for malformed (the list starts at the top).
MAX_START = 10**12

ACTIVE_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
WHO_CHOICES = {"signed-in": "Signed in", "anonymous": "Anonymous"}
SIGNED_IN = {"": None, "signed-in": True, "anonymous": False}

_IPV4_FRAGMENT = re.compile(r"^(?:[0-9]{1,3}\.){1,3}(?:[0-9]{1,3})?$")
_IPV6_FRAGMENT = re.compile(r"^(?:[0-9a-fA-F]{1,4}:){1,7}$")
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() would take "١٢", " 7" and "1_0"
#: Times links may carry (microseconds since 1970): up to the year 3000. Every real
#: last-seen time is in between; anything else is taken for malformed.
MAX_MOMENT = 32_503_680_000_000_000

Item = tuple[str, SessionRecord]


def session_ref(key: str) -> str:
    """The short public name of the session stored under ``key``.

    With ``COMPAT="express"`` the store key is the raw id, so the ref is a
    prefix of its SHA-256 instead.
    """
    if sessionkit_settings.COMPAT == "express":
        return hashlib.sha256(key.encode()).hexdigest()[:REF_LENGTH]
    return key[:REF_LENGTH]


def is_ref(value: str) -> bool:
    return len(value) == REF_LENGTH and all(ch in "0123456789abcdef" for ch in value)


def ip_search(text: str) -> IPNetwork | None:
    """The network a search box entry stands for, or ``None`` when it is not an IP search.

    - an address: itself (``192.0.2.7``, ``2001:db8::1``);
    - a network in CIDR form: ``10.0.0.0/8``, ``2001:db8::/32``;
    - IPv4 whole octets, two or three, the last one followed by a dot or not:
      ``192.168.`` and ``192.168`` are ``192.168.0.0/16``, ``10.1.2`` is ``10.1.2.0/24``,
      and one octet needs its dot: ``10.`` is ``10.0.0.0/8`` (``10`` is a username);
    - IPv6 whole groups each followed by a colon: ``2001:db8:`` is ``2001:db8::/32``.
    """
    text = text.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    if _IPV4_FRAGMENT.match(text):
        octets = [o for o in text.split(".") if o]
        if len(octets) >= 2 or text.endswith("."):
            padded = ".".join(octets + ["0"] * (4 - len(octets)))
            try:
                return ipaddress.ip_network(f"{padded}/{8 * len(octets)}")
            except ValueError:  # an octet above 255
                return None
    if _IPV6_FRAGMENT.match(text):
        groups = text.rstrip(":").split(":")
        address = ":".join(groups + ["0"] * (8 - len(groups)))
        return ipaddress.ip_network(f"{address}/{16 * len(groups)}")
    return None


def stamp(moment: datetime) -> str:
    """A time as the pages carry it: whole microseconds since the epoch."""
    return str(to_us(moment))


def number(text: str, maximum: int) -> int | None:
    """``text`` as a whole number from 0 to ``maximum`` written in ASCII digits, or ``None``.

    Every number the pages take from a query string or a form goes through here, so a
    huge, negative or odd one is refused before it reaches a store or a database."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def moment(text: str) -> datetime | None:
    """A time as :func:`stamp` writes it, or ``None`` when ``text`` is none."""
    us = number(text, MAX_MOMENT)
    return None if us is None else from_us(us)


def is_user_id(text: str) -> bool:
    """Whether ``text`` can be a user id as stores keep it. Any other text (too long, or
    with control characters, which PostgreSQL refuses in a query) matches no session."""
    return 0 < len(text) <= MAX_USER_ID and text.isprintable()


def clean_text(text: str) -> str:
    """Search text without the characters no username, email or address holds (NUL,
    which PostgreSQL refuses in a query, and the other control characters)."""
    return "".join(ch for ch in text if ch.isprintable())


def _key_bound(ref: str, *, inclusive: bool) -> str:
    """A key bound for a :class:`Cursor` at a row known by its ref only: after every key
    starting with ``ref`` (``ref + "g"``; "g" follows the hex digits), or before them.
    With ``COMPAT="express"`` the ref says nothing of the key: the bound is the lowest, so
    rows seen at the same moment come again (the row itself is dropped by ref)."""
    if sessionkit_settings.COMPAT == "express":
        return ""
    return ref if inclusive else ref + "g"
