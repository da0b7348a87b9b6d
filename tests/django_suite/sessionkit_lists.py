"""The two lists beside this file: ``excluded.txt`` and ``differences.txt``.

One entry a line: ``<test id or prefix> [configurations]: <reason>``, where the test id is
Django's (``app.module.Class.test_method``), a class or module matches every test in it, and
``[sqlite]`` / ``[redis]`` (optional) limits the entry to those configurations. ``#`` starts a
comment line. Every entry needs a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXCLUDED = HERE / "excluded.txt"
DIFFERENCES = HERE / "differences.txt"
CONFIGURATIONS = ("sqlite", "redis")

_HEAD = re.compile(r"^(?P<id>[A-Za-z_][\w.]*)(?:\s+\[(?P<configs>[a-z, ]+)\])?$")


@dataclass(frozen=True)
class Entry:
    test_id: str
    reason: str
    configurations: tuple[str, ...]
    line: int

    def matches(self, test_id: str, configuration: str) -> bool:
        return configuration in self.configurations and (
            test_id == self.test_id or test_id.startswith(self.test_id + ".")
        )


class ListError(ValueError):
    """A line of a list that does not parse."""


def read(path: Path) -> list[Entry]:
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, colon, reason = line.partition(": ")
        match = _HEAD.match(head.strip())
        if not colon or not match or not reason.strip():
            raise ListError(f"{path.name}:{number}: expected '<test id> [configs]: <reason>'")
        configs = CONFIGURATIONS
        if match["configs"]:
            configs = tuple(c.strip() for c in match["configs"].split(","))
            if unknown := set(configs) - set(CONFIGURATIONS):
                raise ListError(f"{path.name}:{number}: unknown configuration(s) {sorted(unknown)}")
        entries.append(Entry(match["id"], reason.strip(), configs, number))
    return entries


def find(entries: list[Entry], test_id: str, configuration: str) -> Entry | None:
    for entry in entries:
        if entry.matches(test_id, configuration):
            return entry
    return None
