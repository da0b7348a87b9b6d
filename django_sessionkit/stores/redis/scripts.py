"""The Lua scripts of the Redis store, read once from ``lua/`` beside this file.

A script that starts with ``--! uses index_lib`` gets ``lua/index_lib.lua`` (the index
upkeep: ``place``, ``unindex``, ``drop_from``) put in front of it, so the helpers are
written once. Each script is sent by its SHA-1 (``EVALSHA``) and loaded on ``NOSCRIPT``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
USES_LIB = "--! uses index_lib"

#: Tokens of its last saves a session remembers, so that a replayed save is not applied
#: again even when other saves of the same session came between the two copies.
RECENT_TOKENS = 8


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:  # the digest names the script in every EVALSHA: make it once
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


def load(name: str, **constants: int) -> Script:
    """``lua/<name>.lua``, with the index helpers in front when it uses them and each
    constant's name in the text replaced by its value."""
    text = (LUA / f"{name}.lua").read_text()
    if text.startswith(USES_LIB):
        text = (LUA / "index_lib.lua").read_text() + text
    for constant, value in constants.items():
        text = text.replace(constant, str(value))
    return Script(name, text)


SAVE = load("save", RECENT_TOKENS=RECENT_TOKENS)
TOUCH = load("touch")
INDEX = load("index")
PAGE = load("page")
DELETE_IF_OWNER = load("delete_if_owner")
