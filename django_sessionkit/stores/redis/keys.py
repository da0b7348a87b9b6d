"""The Redis store's key layout, and how a record is laid out in its hash.

``P`` is the prefix (``OPTIONS["PREFIX"]``), ``K`` a session's store key (the SHA-256 hex of
its id):

* ``Ps:K`` — a hash: ``v`` version, ``e`` expires, ``c`` created, ``l`` last seen
  (microseconds since the epoch), ``u`` user id, ``ip``, ``ua``, ``t`` the tokens of the
  last saves (a replayed save is not applied twice), and one field ``d:NAME`` per session
  key holding that value's JSON. TTL = the session's expiry.
* ``P{idx}:exp`` / ``P{idx}:seen`` — sorted sets of every session, scored by expiry and by
  minus last-seen: count in O(log n), pages in O(log n + page).
* ``P{idx}:seen:i`` / ``P{idx}:seen:a`` — the signed-in and the anonymous sessions, scored
  like ``seen``; ``P{idx}:ip:A:i`` / ``P{idx}:ip:A:a`` — the same, from address code ``A``
  (:func:`ip_code`); ``P{idx}:ips`` — the codes of the addresses with sessions, all scored 0,
  so that a network is a ``ZRANGEBYLEX`` range; ``P{idx}:where`` — a hash, session key →
  who, address code and user id, which tells a touch, a delete or a prune where a session
  is indexed, and the purge whose session expired.
* ``Pu:USER`` — a set of the user's session keys, for "sign out everywhere"; members are
  checked against the record when read, and swept by ``purge_expired``.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import json
import random
import zlib
from datetime import datetime, timezone

from redis.crc import key_slot

from django_sessionkit.stores.base import Cursor, SessionRecord, from_us, ip_code, to_us

#: The prefix of the hash fields that hold the session's data.
DATA = "d:"


def ms_ceiling(moment: datetime) -> int:
    return -(-to_us(moment) // 1000)


def now_us() -> int:
    return to_us(datetime.now(timezone.utc))


#: json.dumps(value, separators=(",", ":"), ensure_ascii=False), without making an encoder
#: for every call as json.dumps does when given arguments.
to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def save_token() -> str:
    """A save's token (see ``save.lua``): 72 random bits, without a system call.

    It only has to differ from the tokens of the same session's last few saves, and
    need not be secret: Python's generator, seeded from the OS at start and again in a
    forked child, is enough, and cheaper than ``os.urandom`` on every save.
    """
    return format(random.getrandbits(72), "x")


def meta_fields(record: SessionRecord) -> builtins.list[tuple[str, str | None]]:
    """A record's metadata fields as the hash keeps them; ``None``: the field is absent."""
    return [
        ("e", str(to_us(record.expires_at))),
        ("c", str(to_us(record.created_at))),
        ("l", str(to_us(record.last_seen))),
        ("ua", record.user_agent or ""),
        ("u", None if record.user_id is None else str(record.user_id)),
        ("ip", None if record.ip is None else str(record.ip)),
    ]


def counted_pairs(pairs: builtins.list[tuple[str, str]]) -> builtins.list[str]:
    out: builtins.list[str] = [str(len(pairs))]
    for name, value in pairs:
        out += [name, value]
    return out


def counted_names(names: builtins.list[str]) -> builtins.list[str]:
    return [str(len(names)), *names]


def where(user_id: str | None, ip: str | None, created: int | str | None) -> str:
    """Which of the who- and per-address sets a session belongs in (see ``index_lib.lua``),
    then when it was created (microseconds) and its user: what the purge reports of a
    session whose record Redis has already dropped."""
    who = "a" if user_id is None else "i"
    return f"{who}{ip_code(ip)}|{created or ''}|{user_id or ''}"


def where_details(place: str) -> tuple[str | None, datetime | None]:
    """The user id and the creation time :func:`where` put in ``place`` (``None`` when
    anonymous or not recorded: entries of earlier releases hold neither)."""
    _code, _bar, rest = place.partition("|")
    created, _bar, user_id = rest.partition("|")
    signed_in = place.startswith("i") and user_id != ""
    return (user_id if signed_in else None), (from_us(int(created)) if created.isdigit() else None)


def cursor_args(after: Cursor | None) -> tuple[str, str]:
    """The PAGE script's cursor arguments (score is minus last seen, as in the seen sets)."""
    return ("", "") if after is None else (str(-to_us(after.last_seen)), after.key)


# --- index shards -----------------------------------------------------------------

#: Hash-tag slots of a Redis Cluster.
SLOTS = 16384
#: The hash tag of the one index of releases up to 0.2 (and of ``INDEX_SHARDS = 1``).
SINGLE_TAG = "idx"


@functools.lru_cache(maxsize=64)
def shard_tags(count: int) -> tuple[str, ...]:
    """The hash tags of ``count`` index shards.

    Each tag is chosen so that its Cluster slot lies near the middle of the n-th of
    ``count`` equal slot ranges: a Cluster's masters hold contiguous, equal slot ranges
    (``redis-cli --cluster create``), so the shards spread over 3, 4, 6, 8 or 12 masters
    within one shard of even. One shard is the single ``{idx}`` index of earlier releases.
    """
    if count == 1:
        return (SINGLE_TAG,)
    width = SLOTS / count
    tags = []
    for n in range(count):
        target, tolerance = (n + 0.5) * width, max(1.0, width / 8)
        for candidate in itertools.count():
            tag = f"idx:{n}:{candidate}"
            if abs(key_slot(tag.encode()) - target) <= tolerance:
                break
        tags.append(tag)
    return tuple(tags)


def shard_of(key: str, count: int) -> int:
    """The shard a session's index entries live in, fixed by its store key."""
    return zlib.crc32(key.encode()) % count


class Shards:
    """The index bases (``P{tag}:``) of one store: ``count`` shards, and the single index of
    earlier releases (``P{idx}:``) while sessions indexed there are moved out of it."""

    def __init__(self, prefix: str, count: int) -> None:
        self.count = count
        self.bases = tuple(f"{prefix}{{{tag}}}:" for tag in shard_tags(count))
        self.single = f"{prefix}{{{SINGLE_TAG}}}:"
        #: The earlier single index, when it is not one of the shards (INDEX_SHARDS > 1).
        self.legacy = self.single if count > 1 else None

    def base_of(self, key: str) -> str:
        return self.bases[shard_of(key, self.count)] if self.count > 1 else self.bases[0]

    def group(self, keys: builtins.list[str]) -> dict[str, builtins.list[str]]:
        """``keys`` by the base of their shard."""
        grouped: dict[str, builtins.list[str]] = {}
        for key in keys:
            grouped.setdefault(self.base_of(key), []).append(key)
        return grouped
