"""Masking of sensitive session values before an admin page shows them.

A key is sensitive when its name contains one of the configured fragments
(case-insensitive), at any depth of nested dicts. Django's auth hash is
always masked, whatever the setting says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from django.contrib.auth import HASH_SESSION_KEY

from django_sessionkit.conf import sessionkit_settings

__all__ = [
    "DEEPER",
    "DEFAULT_SENSITIVE_KEYS",
    "MASK",
    "SHOWN_DEPTH",
    "mask",
    "pretty",
    "sensitive_keys",
]

MASK = "********"

#: Levels of lists and dicts inside the data that :func:`pretty` writes out (the default
#: ``SESSIONKIT["MAX_DEPTH"]``); deeper ones become :data:`DEEPER`.
SHOWN_DEPTH = 100

#: Written in place of the contents of a list or dict nested deeper than that.
DEEPER = "… deeper levels not shown"

_scalar = json.JSONEncoder(ensure_ascii=False, default=str).encode
_MASKED = _scalar(MASK)

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
    """A copy of ``value`` with the values of sensitive keys replaced by :data:`MASK`.

    Walks with a stack of its own, not by recursion, so any depth is fine.
    """
    if fragments is None:
        fragments = sensitive_keys()
    root: list[Any] = [None]
    # (a value to copy, the container its copy goes into, and where in it)
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, target, slot = stack.pop()
        if isinstance(item, Mapping):
            copy: dict[Any, Any] = {}
            for key, child in item.items():
                copy[key] = MASK  # a placeholder keeps the order; replaced below unless sensitive
                if not is_sensitive(str(key), fragments):
                    stack.append((child, copy, key))
            target[slot] = copy
        elif isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            stack.extend((child, items, index) for index, child in enumerate(item))
            target[slot] = items
        else:
            target[slot] = item
    return root[0]


def _key_text(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    return _scalar(key) if isinstance(key, int | float) else str(key)


def pretty(
    data: Mapping[str, Any],
    fragments: Sequence[str] | None = None,
    *,
    shown_depth: int = SHOWN_DEPTH,
) -> str:
    """Masked session data as indented, key-sorted JSON, ``shown_depth`` levels deep.

    The same text as ``json.dumps(mask(data), indent=2, sort_keys=True,
    ensure_ascii=False, default=str)``, except that a list or dict nested deeper than
    ``shown_depth`` levels inside the data is written ``[… deeper levels not shown]``
    (or with braces). No recursion: old data stored deeper than any limit renders in
    time proportional to what is shown.
    """
    if fragments is None:
        fragments = sensitive_keys()
    out: list[str] = []
    # Text to write as it is, or (a value, its level) to write out; last in, first out.
    stack: list[str | tuple[Any, int]] = [(data, 0)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        value, level = item
        if isinstance(value, Mapping):
            opening, closing = "{", "}"
        elif isinstance(value, list | tuple):
            opening, closing = "[", "]"
        else:
            out.append(_scalar(value))
            continue
        if not value:
            out.append(opening + closing)
        elif level > shown_depth:
            out.append(f"{opening}{DEEPER}{closing}")
        else:
            indent = "\n" + "  " * (level + 1)
            work: list[str | tuple[Any, int]] = [opening]
            if opening == "{":
                keys = sorted(((_key_text(key), key) for key in value), key=itemgetter(0))
                for index, (text, key) in enumerate(keys):
                    prefix = f"{',' if index else ''}{indent}{_scalar(text)}: "
                    if is_sensitive(str(key), fragments):
                        work.append(prefix + _MASKED)
                    else:
                        work += [prefix, (value[key], level + 1)]
            else:
                for index, child in enumerate(value):
                    work += [("," if index else "") + indent, (child, level + 1)]
            work.append("\n" + "  " * level + closing)
            stack.extend(reversed(work))
    return "".join(out)
