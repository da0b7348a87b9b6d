"""MongoStore's document: field names and values of ``data``, the listing order, the
metadata fields (see :mod:`django_sessionkit.stores.mongo.store` for the layout)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django_sessionkit.stores.base import (
    CorruptSession,
    SessionRecord,
    from_us,
    ip_code,
    to_us,
    utcnow,
)

__all__ = ["field_name", "key_name", "order_key"]

#: Tokens of its last saves a session remembers (see the module docstring).
RECENT_TOKENS = 8
#: Sessions ``delete_all`` ends per batch.
DELETE_BATCH = 500
#: Attempts of the read-then-write save (each lost to a concurrent writer).
MAX_SAVE_ATTEMPTS = 20
#: Server errors of a ``$inc`` on a value that is not a number (TypeMismatch) or that
#: would overflow 64 bits (BadValue): the save then adds the numbers itself.
INC_REFUSED = frozenset({2, 14})

_ORDER_BASE = 1 << 63
_INT64 = range(-(1 << 63), 1 << 63)
_ESCAPES = str.maketrans({"%": "%25", ".": "%2E", "$": "%24", "\0": "%00"})

#: What a load reads (the rest is bookkeeping).
PROJECTION = {"tokens": 0, "order": 0, "expires": 0}


def field_name(name: str) -> str:
    """The field of ``data`` that holds session key ``name``."""
    return name.translate(_ESCAPES) if name else "%"


def key_name(field: str) -> str:
    """The session key a field of ``data`` holds (undoes :func:`field_name`)."""
    if "%" not in field:
        return field
    if field == "%":
        return ""
    parts = field.split("%")
    return parts[0] + "".join(chr(int(part[:2], 16)) + part[2:] for part in parts[1:])


def encode_value(value: Any) -> Any:
    """A number as itself (64-bit integers, finite floats), anything else as JSON text."""
    if isinstance(value, bool):
        return _json(value)
    if (isinstance(value, int) and value in _INT64) or (
        isinstance(value, float) and math.isfinite(value)
    ):
        return value
    return _json(value)


def decode_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested ~1000 levels
            raise CorruptSession(f"a value is not JSON: {exc!r:.200}") from exc
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def order_key(last_seen: datetime, key: str) -> str:
    """The ``order`` field: most recently seen first, then by key."""
    inverted = min(max(_ORDER_BASE - to_us(last_seen), 0), (1 << 64) - 1)
    return f"{inverted:016x}{key}"


def now_us() -> int:
    return to_us(utcnow())


def metadata(key: str, record: SessionRecord) -> dict[str, Any]:
    """The fields a save or a create writes besides ``data`` and the version."""
    ip = None if record.ip is None else str(record.ip)
    return {
        "user": None if record.user_id is None else str(record.user_id),
        "signedIn": record.user_id is not None,
        "ip": ip,
        "ipKey": ip_code(ip),
        "userAgent": record.user_agent or "",
        "lastSeenUs": to_us(record.last_seen),
        "expiresUs": to_us(record.expires_at),
        "expires": from_us(to_us(record.expires_at)),
        "order": order_key(record.last_seen, key),
    }


def encoded(data: Mapping[str, Any]) -> dict[str, Any]:
    return {field_name(name): encode_value(value) for name, value in data.items()}


def decoded(fields: Any) -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        raise CorruptSession(f"data is a {type(fields).__name__}, not a document")
    return {key_name(field): decode_value(value) for field, value in fields.items()}
