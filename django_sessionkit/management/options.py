"""Parsing and checking of command-line values; each bad value is a CommandError
that says what was given and what is accepted."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_sessionkit import cookies
from django_sessionkit.stores.base import utcnow

MAX_BATCH_SIZE = 100_000
#: A ``--session`` prefix shorter than this matches too much to be a safe target.
MIN_PREFIX_LENGTH = 8
KEY_LENGTH = 64
#: The shortest session_key ``--session`` takes (GENID's shortest id).
MIN_SESSION_KEY_LENGTH = 16

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_HEX = re.compile(r"^[0-9a-f]+$")


def batch_size(value: object, option: str = "--batch-size") -> int:
    """A whole number from 1 to MAX_BATCH_SIZE."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_BATCH_SIZE:
        raise CommandError(
            f"{option} {value!r} is not accepted: give a whole number from 1 to {MAX_BATCH_SIZE:,}."
        )
    return number


def seconds(value: object, option: str, *, allow_zero: bool = True) -> float:
    """A number of seconds (decimals allowed): zero or more, or more than zero."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    low_ok = number >= 0 if allow_zero else number > 0
    if not (low_ok and number < float("inf")):
        accepted = "zero or more" if allow_zero else "more than zero"
        raise CommandError(
            f"{option} {value!r} is not accepted: give a number of seconds, {accepted} "
            "(for example 0.5 or 30)."
        )
    return number


def since(value: str, option: str = "--active-since") -> datetime:
    """A moment: a duration back from now (``30m``, ``1h``, ``2d``) or an ISO date/datetime."""
    match = _DURATION.match(value)
    if match:
        amount, unit = int(match[1]), match[2].lower()
        return utcnow() - timedelta(**{_UNITS[unit]: amount})
    moment = None
    try:
        moment = parse_datetime(value.strip())
        if moment is None and (day := parse_date(value.strip())) is not None:
            moment = datetime(day.year, day.month, day.day)
    except ValueError:  # well formed but impossible, e.g. 2026-02-30
        moment = None
    if moment is None:
        raise CommandError(
            f"{option} {value!r} is not understood: give a duration back from now, a whole "
            "number with s, m, h, d or w (30m, 1h, 2d, 1w), or an ISO date or date-time "
            "(2026-11-01, 2026-11-01T09:30, 2026-11-01T09:30+01:00)."
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def key_prefix(value: str, option: str = "--session") -> str:
    """A prefix of a store key: at least MIN_PREFIX_LENGTH hex digits (case ignored), or
    the whole handle of a session named by its ``session_key`` (what an app stored) or
    its signed cookie."""
    prefix = value.strip().lower()
    if MIN_PREFIX_LENGTH <= len(prefix) <= KEY_LENGTH and _HEX.match(prefix):
        return prefix
    from django_sessionkit.engine import store_key
    from django_sessionkit.management.lookup import handle_of

    text = value.strip()
    if len(text) >= MIN_SESSION_KEY_LENGTH and (session_id := cookies.key_to_id(text)):
        return handle_of(store_key(session_id), KEY_LENGTH)
    raise CommandError(
        f"{option} {value!r} is not accepted: give the start of the session's key as "
        f"listsessions shows it, {MIN_PREFIX_LENGTH} to {KEY_LENGTH} hexadecimal "
        "characters (0-9, a-f), or the session's session_key."
    )
