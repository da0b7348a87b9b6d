"""Masking of sensitive session values before an admin page shows them.

A key is sensitive when its name contains one of the configured fragments
(case-insensitive), at any depth of nested dicts. Django's auth hash is
always masked, whatever the setting says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY

from django_sessionkit.conf import sessionkit_settings

__all__ = ["DEFAULT_SENSITIVE_KEYS", "MASK", "mask", "pretty", "sensitive_keys"]

MASK = "********"

#: Used when ``SESSIONKIT["ADMIN_SENSITIVE_KEYS"]`` is not set.
DEFAULT_SENSITIVE_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth_hash",
    "credit_card",
    "card_number",
    "cvv",
    "ssn",
    "otp",
    "private",
)

ALWAYS_MASKED = frozenset({HASH_SESSION_KEY})


def sensitive_keys() -> tuple[str, ...]:
    """The configured fragments, lower-cased (``SESSIONKIT["ADMIN_SENSITIVE_KEYS"]``)."""
    configured = sessionkit_settings.ADMIN_SENSITIVE_KEYS
    return DEFAULT_SENSITIVE_KEYS if configured is None else configured


def is_sensitive(key: str, fragments: Iterable[str]) -> bool:
    lowered = key.lower()
    return key in ALWAYS_MASKED or any(fragment in lowered for fragment in fragments)


def mask(value: Any, fragments: Sequence[str] | None = None) -> Any:
    """A copy of ``value`` with the values of sensitive keys replaced by :data:`MASK`."""
    if fragments is None:
        fragments = sensitive_keys()
    if isinstance(value, Mapping):
        return {
            key: MASK if is_sensitive(str(key), fragments) else mask(item, fragments)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(item, fragments) for item in value]
    return value


def pretty(data: Mapping[str, Any]) -> str:
    """Masked session data as indented, key-sorted JSON."""
    return json.dumps(mask(data), indent=2, sort_keys=True, ensure_ascii=False, default=str)
