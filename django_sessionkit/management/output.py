"""Streaming writers for session listings: a table, a JSON array or CSV, row by row."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from django.core.management.base import OutputWrapper
from django.utils import timezone

FORMATS = ("table", "json", "csv")
COLUMNS = ("key", "user", "ip", "user_agent", "created", "last_seen", "expires")
#: ``listsessions --ended``: the sessions kept by the audit trail (KEEP_ENDED).
ENDED_COLUMNS = ("key", "user", "ip", "user_agent", "started", "created", "ended", "reason", "by")
_WIDTHS = {
    "key": 12,
    "user": 20,
    "ip": 39,
    "user_agent": 40,
    "created": 16,
    "started": 8,
    "reason": 16,
    "by": 7,
}
_TIME_WIDTH = 16
USER_AGENT_WIDTH = _WIDTHS["user_agent"]


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class Raw:
    """A command's stdout that writes exactly what it is given (no added newline)."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str, /) -> int:
        self.wrapper.write(text, ending="")
        return len(text)


class RowWriter(Protocol):
    def row(self, values: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class TableWriter:
    def __init__(self, out: Writable, columns: Sequence[str] = COLUMNS) -> None:
        self.out = out
        self.rows = 0
        self.columns = columns
        self._line(tuple(c.upper().replace("_", " ") for c in columns))

    def _line(self, cells: Sequence[str]) -> None:
        widths = [_WIDTHS.get(c, _TIME_WIDTH) for c in self.columns]
        parts = [shorten(cell, w).ljust(w) for cell, w in zip(cells, widths, strict=True)]
        self.out.write("  ".join(parts).rstrip() + "\n")

    def row(self, values: dict[str, Any]) -> None:
        self.rows += 1
        cells = [_text(values[c], table=True) for c in self.columns]
        self._line(cells)

    def close(self) -> None:
        self.out.write(f"({self.rows:,} sessions)\n")


class JsonWriter:
    """A JSON array written element by element, so nothing is held in memory."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.first = True
        self.out.write("[")

    def row(self, values: dict[str, Any]) -> None:
        item = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
        self.out.write(("\n" if self.first else ",\n") + json.dumps(item, ensure_ascii=False))
        self.first = False

    def close(self) -> None:
        self.out.write("\n]\n" if not self.first else "]\n")


class CsvWriter:
    def __init__(self, out: Writable, columns: Sequence[str] = COLUMNS) -> None:
        self.out = out
        self.columns = columns
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(columns)

    def row(self, values: dict[str, Any]) -> None:
        self.writer.writerow([_text(values[c]) for c in self.columns])

    def close(self) -> None:
        pass


def writer(fmt: str, out: Writable, columns: Sequence[str] = COLUMNS) -> RowWriter:
    """A writer of ``columns`` (a JSON row has every value it is given)."""
    if fmt == "json":
        return JsonWriter(out)
    if fmt == "csv":
        return CsvWriter(out, columns)
    return TableWriter(out, columns)


def _text(value: Any, *, table: bool = False) -> str:
    if value is None:
        return "-" if table else ""
    if isinstance(value, datetime):
        if not table:
            return value.isoformat()
        local = timezone.localtime(value) if timezone.is_aware(value) else value
        return local.strftime("%Y-%m-%d %H:%M")
    return str(value)
