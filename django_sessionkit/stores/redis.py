"""RedisStore: sessions in Redis or Valkey — standalone, behind Sentinel, or in a Cluster.

Configured like Django's ``CACHES``::

    SESSIONKIT = {"STORE": {
        "BACKEND": "django_sessionkit.stores.redis.RedisStore",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"PREFIX": "myapp:"},
    }}

``LOCATION``
    standalone: one ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.
    cluster: a list of startup nodes (``"redis://host:port"`` or ``"host:port"``).
    sentinel: optional ``redis://[user:password@]SERVICE_NAME/DB`` giving the master's
    name, credentials and database.

``OPTIONS`` (all optional except where a mode needs them)
    ``PREFIX`` (``"sessionkit:"``) — every key starts with it.
    ``MODE`` — ``"standalone"``, ``"sentinel"`` or ``"cluster"``; inferred when unset:
    ``SENTINELS`` given → sentinel, ``LOCATION`` a list → cluster, else standalone.
    ``SENTINELS`` — list of ``(host, port)`` or ``"host:port"``; ``SERVICE_NAME``;
    ``SENTINEL_KWARGS`` — dict for the connections to the sentinels (e.g. ``{"password": …}``).
    ``SOCKET_TIMEOUT`` (0.5), ``SOCKET_CONNECT_TIMEOUT`` (0.5) — seconds.
    ``RETRY_ATTEMPTS`` (3), ``RETRY_BACKOFF_BASE`` (0.01), ``RETRY_BACKOFF_CAP`` (0.5) —
    retries of a command after a dropped connection (not after a timeout), exponential
    backoff with jitter.
    ``MAX_CONNECTIONS``, ``HEALTH_CHECK_INTERVAL``.
    ``SSL_CA_CERTS``, ``SSL_CERTFILE``, ``SSL_KEYFILE``, ``SSL_CERT_REQS``
    (``"required"``/``"optional"``/``"none"``), ``SSL_CHECK_HOSTNAME`` — for ``rediss://``.
    ``CONNECTION_POOL_KWARGS`` — passed as they are to redis-py (lower-case names).

Key layout (``P`` is the prefix, ``K`` the SHA-256 hex of the session id):

* ``Ps:K`` — a hash: ``v`` version, ``e`` expires, ``c`` created, ``l`` last seen
  (microseconds since the epoch), ``u`` user id, ``ip``, ``ua``, ``t`` the tokens of the
  last saves (a replayed save is not applied twice), and one field
  ``d:NAME`` per session key holding that value's JSON. TTL = the session's expiry.
* ``P{idx}:exp`` / ``P{idx}:seen`` — sorted sets of every session, scored by expiry and by
  minus last-seen: count in O(log n), pages in O(log n + page). One hash tag, one slot.
* ``P{idx}:seen:i`` / ``P{idx}:seen:a`` — the signed-in and the anonymous sessions, scored
  like ``seen``; ``P{idx}:ip:A:i`` / ``P{idx}:ip:A:a`` — the same, from address code ``A``
  (:func:`ip_code`); ``P{idx}:ips`` — the codes of the addresses with sessions, all scored 0,
  so that a network is a ``ZRANGEBYLEX`` range; ``P{idx}:where`` — a hash, session key →
  who and address code, which tells a touch, a delete or a prune where a session is indexed.
* ``Pu:USER`` — a set of the user's session keys, for "sign out everywhere"; members are
  checked against the record when read, and swept by ``purge_expired``.

Sessions saved by a version without the who- and address sets are in ``exp`` and ``seen``
only: listed unfiltered, and placed in the other sets at their next save, or at their next
touch (two more round trips, once).

Round trips: ``load`` 1, ``save`` 1, ``touch`` 1, ``delete`` 1 (on a Cluster one
pipeline, whose commands go to their nodes in parallel). Saves and touches run a Lua script on
the session key that checks existence and version and writes in place; because data is kept
field by field, a concurrent save is merged inside the script (no retry round trips). On
standalone and Sentinel the script also updates the indexes; on a Cluster the index commands
travel in the same pipeline and are undone in the rare case the script refuses the write.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import redis.cluster
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import NoScriptError, RedisError, ResponseError

from django_sessionkit.stores import redis_client
from django_sessionkit.stores.base import (
    Changes,
    CreateError,
    Cursor,
    IPFilter,
    SessionRecord,
    Store,
    StoreUnavailable,
    UpdateError,
    as_network,
    from_us,
    matches,
    to_us,
)

logger = logging.getLogger("django_sessionkit")

__all__ = ["RedisStore"]

DATA = "d:"
#: Stale index entries removed per ``list`` call (``purge_expired`` removes the rest).
PRUNE_ON_LIST = 1000
#: Index entries one call of the PAGE script reads at most when it walks the listing for
#: an IP filter (the next call goes on from there).
WALK_LIMIT = 20_000
#: Sessions ``delete_all`` handles per batch.
DELETE_BATCH = 500
#: Tokens of its last saves a session remembers, so that a replayed save is not applied
#: again even when other saves of the same session came between the two copies.
RECENT_TOKENS = 8

T = TypeVar("T")


@dataclass(frozen=True)
class Script:
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:  # the digest names the script in every EVALSHA: make it once
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


# Index upkeep, shared by the scripts below. Every index key starts with B = "P{idx}:" and
# so lives in one Cluster slot; the per-address sets are named from the session's place,
# "where" = who ("i" signed in, "a" anonymous) followed by the address code ("-": none).
INDEX_LIB = """
local function drop_from(B, m, w)
  local who, ipx = string.sub(w, 1, 1), string.sub(w, 2)
  redis.call('ZREM', B .. 'seen:' .. who, m)
  if ipx ~= '-' then
    redis.call('ZREM', B .. 'ip:' .. ipx .. ':' .. who, m)
    if redis.call('EXISTS', B .. 'ip:' .. ipx .. ':i', B .. 'ip:' .. ipx .. ':a') == 0 then
      redis.call('ZREM', B .. 'ips', ipx)
    end
  end
end
local function unindex(B, m)
  redis.call('ZREM', B .. 'exp', m)
  redis.call('ZREM', B .. 'seen', m)
  local w = redis.call('HGET', B .. 'where', m)
  if w then
    drop_from(B, m, w)
    redis.call('HDEL', B .. 'where', m)
  end
end
-- mode 'set': always; 'nx': only a session not in the index yet; 'xx': only one already in
-- it. w = '' keeps the session where it is (a touch). Returns 0 (nothing done), 1 (indexed)
-- or 2 (in exp and seen only: saved by an older version, its place is not known yet).
local function place(B, m, mode, exp, seen, w)
  if mode ~= 'set' then
    local indexed = redis.call('ZSCORE', B .. 'exp', m) ~= false
    if indexed == (mode == 'nx') then return 0 end
  end
  redis.call('ZADD', B .. 'exp', exp, m)
  redis.call('ZADD', B .. 'seen', seen, m)
  local old = redis.call('HGET', B .. 'where', m)
  if w == '' then
    if not old then return 2 end
    w = old
  elseif old and old ~= w then
    drop_from(B, m, old)
  end
  local who, ipx = string.sub(w, 1, 1), string.sub(w, 2)
  redis.call('ZADD', B .. 'seen:' .. who, seen, m)
  if ipx ~= '-' then redis.call('ZADD', B .. 'ip:' .. ipx .. ':' .. who, seen, m) end
  if old ~= w then
    if ipx ~= '-' then redis.call('ZADD', B .. 'ips', 0, ipx) end
    redis.call('HSET', B .. 'where', m, w)
  end
  return 1
end
"""

# ARGV: op, expected version, expire-at ms, member, expires us, -last seen us, index base,
# where, this save's token, then counted lists: meta pairs, meta names to unset, data pairs
# to set, data names to remove, and increments as (name, value to write, delta to add
# instead when another save came first). 'create' and 'replace' send the whole data as
# pairs to set; 'merge' sends only what this request changed, which is the same thing as
# writing it all when nobody saved meanwhile. KEYS: the session, then (outside a Cluster)
# the exp index and the user's set.
# The token makes a save idempotent: the hash remembers the tokens of its last saves ('t'),
# and a save whose token is among them was applied already (a client's retry after a
# timeout or a dropped reply, which Redis may run after the first copy): it changes nothing
# and answers as a merge would, with the data as stored.
SAVE = Script(
    INDEX_LIB
    + """
local key = KEYS[1]
local op, expected, token = ARGV[1], tonumber(ARGV[2]), ARGV[9]
local i = 10
local function with_data(reply)
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == 'd:' then
      reply[#reply + 1] = all[j]
      reply[#reply + 1] = all[j + 1]
    end
  end
  return reply
end
local tokens = redis.call('HGET', key, 't') or ''
if string.find(' ' .. tokens .. ' ', ' ' .. token .. ' ', 1, true) then
  return with_data({1, tonumber(redis.call('HGET', key, 'v')) or 0, 1})
end
local function take(width)
  local n, out = tonumber(ARGV[i]) * width, {}
  for j = 1, n do out[j] = ARGV[i + j] end
  i = i + n + 1
  return out
end
-- unpack() has a stack limit: send long argument lists in slices.
local function call_in_slices(command, list)
  for first = 1, #list, 1000 do
    redis.call(command, key, unpack(list, first, math.min(first + 999, #list)))
  end
end
local meta, unset, set, removed, incr = take(2), take(1), take(2), take(1), take(3)
-- Every record has a version field: reading it tells whether the record exists.
local stored = redis.call('HGET', key, 'v')
if op == 'create' then
  if stored then return {0, 0, 0} end
elseif not stored then
  return {-1, 0, 0}
end
local version, conflict = 1, false
if op ~= 'create' then
  stored = tonumber(stored) or 0
  conflict = op == 'merge' and stored ~= expected
  version = stored + 1
end
if op == 'replace' then
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'd:' then old[#old + 1] = f end
  end
  call_in_slices('HDEL', old)
end
call_in_slices('HDEL', removed)
call_in_slices('HDEL', unset)
for j = 1, #incr, 3 do
  local text = incr[j + 1]
  if conflict then
    -- Add the delta to the newer value (0 when that is not a number), keeping Python's
    -- int/float distinction in the JSON written back.
    local current, base, is_float = redis.call('HGET', key, incr[j]), 0, false
    if current and string.match(current, '^%-?%d') and tonumber(current) then
      base, is_float = tonumber(current), string.find(current, '[%.eE]') ~= nil
    end
    is_float = is_float or string.find(incr[j + 2], '[%.eE]') ~= nil
    local sum = base + tonumber(incr[j + 2])
    if is_float then
      text = string.format('%.17g', sum)
      if not string.find(text, '[%.eEn]') then text = text .. '.0' end
    else
      text = string.format('%.0f', sum)
    end
  end
  set[#set + 1] = incr[j]
  set[#set + 1] = text
end
for j = 1, #meta do set[#set + 1] = meta[j] end
set[#set + 1] = 'v'
set[#set + 1] = version
-- This save's token first, then the previous ones, RECENT_TOKENS in all.
local kept, count = token, 1
for t in string.gmatch(tokens, '%S+') do
  if count == RECENT_TOKENS then break end
  kept, count = kept .. ' ' .. t, count + 1
end
set[#set + 1] = 't'
set[#set + 1] = kept
call_in_slices('HSET', set)
redis.call('PEXPIREAT', key, ARGV[3])
if #KEYS >= 2 then
  place(ARGV[7], ARGV[4], 'set', ARGV[5], ARGV[6], ARGV[8])
  if #KEYS >= 3 then redis.call('SADD', KEYS[3], ARGV[4]) end
end
if not conflict then return {1, version, 0} end
return with_data({1, version, 1})
""".replace("RECENT_TOKENS", str(RECENT_TOKENS))
)

# ARGV: now us, expires us, last seen us, expire-at ms, member, -last seen us, index base.
# KEYS: the session, then (outside a Cluster) the exp index. Returns 0 (missing or expired:
# nothing changed), else what place() says (1; 2: the caller places it).
TOUCH = Script(
    INDEX_LIB
    + """
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'l', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
if #KEYS >= 2 then return place(ARGV[7], ARGV[5], 'set', ARGV[2], ARGV[6], '') end
return 1
"""
)

# The index side of a save or touch on a Cluster, and removals. KEYS: the exp index.
# ARGV: base, 'set' | 'nx' | 'xx', member, expires us, -last seen us, where -> place();
# or base, 'del', members... -> unindex each.
INDEX = Script(
    INDEX_LIB
    + """
local B = ARGV[1]
if ARGV[2] == 'del' then
  for j = 3, #ARGV do unindex(B, ARGV[j]) end
  return #ARGV - 2
end
return place(B, ARGV[3], ARGV[2], ARGV[4], ARGV[5], ARGV[6])
"""
)

# Prunes index entries of expired sessions (at most ARGV[3]), then returns up to ARGV[6]
# entries of one listing after a cursor. KEYS: the exp index. ARGV: base, now us, prune
# limit, source ('seen' or 'exp'), who ('' either, 'i', 'a'), count, cursor score ('' from
# the start), cursor member, then for an IP filter the lowest and highest address codes
# ('' without), and how many entries a walk may read per call.
# Entries are ordered by score, then member (the sorted sets' own order); the reply is
# {pruned, {member, score, ...}, done, resume score, resume member}: done = 1 when nothing
# follows; else the next call goes on after the resume position (the last entry examined).
PAGE = Script(
    INDEX_LIB
    + """
local B = ARGV[1]
local prune = tonumber(ARGV[3])
local stale = redis.call('ZRANGEBYSCORE', B .. 'exp', '-inf', ARGV[2], 'LIMIT', 0, prune)
for _, m in ipairs(stale) do unindex(B, m) end
local n, who, cs, cm, lo, hi = tonumber(ARGV[6]), ARGV[5], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if n <= 0 then return {#stale, {}, 1, '', ''} end
if cs == '' then cs = nil end

-- Up to k entries {member, score text, score} of the sorted set src after (s, m).
local function after(src, s, m, k)
  local out, lower = {}, '-inf'
  if s then
    for _, t in ipairs(redis.call('ZRANGEBYSCORE', src, s, s)) do
      if t > m then
        out[#out + 1] = {t, s, tonumber(s)}
        if #out == k then return out end
      end
    end
    lower = '(' .. s
  end
  local rest = redis.call('ZRANGEBYSCORE', src, lower, '+inf', 'WITHSCORES', 'LIMIT', 0, k - #out)
  for j = 1, #rest, 2 do out[#out + 1] = {rest[j], rest[j + 1], tonumber(rest[j + 1])} end
  return out
end

local function reply(found, done, last)
  local flat = {}
  for _, e in ipairs(found) do flat[#flat + 1] = e[1]; flat[#flat + 1] = e[2] end
  if last then return {#stale, flat, done, last[2], last[1]} end
  return {#stale, flat, done, '', ''}
end

local source = B .. ARGV[4]
if who ~= '' then source = source .. ':' .. who end
if lo == '' then
  local found = after(source, cs, cm, n)
  return reply(found, #found < n and 1 or 0, found[#found])
end

-- An IP filter: merge the per-address sets of the addresses in range, or walk the listing
-- and keep the sessions whose address is in range, whichever reads fewer entries. Merging
-- costs about one lookup per set; walking, n x (sessions / sessions in range).
local whos = who == '' and {'i', 'a'} or {who}
local sets = redis.call('ZLEXCOUNT', B .. 'ips', '[' .. lo, '[' .. hi) * #whos
if sets * sets <= n * redis.call('ZCARD', source) then
  local heap, buffers, found = {}, {}, {}
  local function first(a, b) return a[3] < b[3] or (a[3] == b[3] and a[1] < b[1]) end
  local function push(e)
    local j = #heap + 1
    heap[j] = e
    while j > 1 and first(heap[j], heap[math.floor(j / 2)]) do
      local p = math.floor(j / 2)
      heap[j], heap[p] = heap[p], heap[j]
      j = p
    end
  end
  local function pop()
    local top = heap[1]
    heap[1] = heap[#heap]
    heap[#heap] = nil
    local j = 1
    while true do
      local l, r, s = 2 * j, 2 * j + 1, j
      if l <= #heap and first(heap[l], heap[s]) then s = l end
      if r <= #heap and first(heap[r], heap[s]) then s = r end
      if s == j then return top end
      heap[j], heap[s] = heap[s], heap[j]
      j = s
    end
  end
  local CHUNK = 8
  local sources = {}
  for _, ipx in ipairs(redis.call('ZRANGEBYLEX', B .. 'ips', '[' .. lo, '[' .. hi)) do
    if #ipx == #lo then
      for _, w in ipairs(whos) do sources[#sources + 1] = B .. 'ip:' .. ipx .. ':' .. w end
    end
  end
  for i, src in ipairs(sources) do
    buffers[i] = {after(src, cs, cm, CHUNK), 1}
    local e = buffers[i][1][1]
    if e then push({e[1], e[2], e[3], i}) end
  end
  while #found < n and #heap > 0 do
    local e = pop()
    found[#found + 1] = e
    local buffer = buffers[e[4]]
    buffer[2] = buffer[2] + 1
    if buffer[2] > #buffer[1] and #buffer[1] == CHUNK then
      buffers[e[4]] = {after(sources[e[4]], e[2], e[1], CHUNK), 1}
      buffer = buffers[e[4]]
    end
    local nxt = buffer[1][buffer[2]]
    if nxt then push({nxt[1], nxt[2], nxt[3], e[4]}) end
  end
  return reply(found, #heap == 0 and 1 or 0, found[#found])
end
local found, last, examined = {}, nil, 0
local budget = tonumber(ARGV[11])
local BATCH = math.min(256, budget)
local s, m = cs, cm
while true do
  local batch = after(source, s, m, BATCH)
  local members = {}
  for j, e in ipairs(batch) do members[j] = e[1] end
  local places = #members > 0 and redis.call('HMGET', B .. 'where', unpack(members)) or {}
  for j, e in ipairs(batch) do
    last, examined = e, examined + 1
    local w = places[j]
    if w then
      local ipx = string.sub(w, 2)
      if #ipx == #lo and ipx >= lo and ipx <= hi then
        found[#found + 1] = e
        if #found == n then return reply(found, 0, last) end
      end
    end
  end
  if #batch < BATCH then return reply(found, 1, last) end
  if examined >= budget then return reply(found, 0, last) end
  s, m = last[2], last[1]
end
"""
)

DELETE_IF_OWNER = Script("""
if redis.call('HGET', KEYS[1], 'u') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


@dataclass(frozen=True)
class Call:
    """One command of a round trip; ``script`` is set for EVALSHA calls (reloaded on NOSCRIPT)."""

    args: tuple[Any, ...]
    script: Script | None = None


Plan = builtins.list[Call]
Results = builtins.list[Any]
Steps = Generator[Plan, Results, T]


def _eval(script: Script, keys: builtins.list[str], args: builtins.list[Any]) -> Call:
    return Call(("EVALSHA", script.sha, len(keys), *keys, *args), script)


def _ms_ceiling(moment: datetime) -> int:
    return -(-to_us(moment) // 1000)


def _now_us() -> int:
    return to_us(datetime.now(timezone.utc))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _meta(record: SessionRecord) -> builtins.list[tuple[str, str | None]]:
    """A record's metadata fields as the hash keeps them; ``None``: the field is absent."""
    return [
        ("e", str(to_us(record.expires_at))),
        ("c", str(to_us(record.created_at))),
        ("l", str(to_us(record.last_seen))),
        ("ua", record.user_agent or ""),
        ("u", None if record.user_id is None else str(record.user_id)),
        ("ip", None if record.ip is None else str(record.ip)),
    ]


def _flat(pairs: builtins.list[tuple[str, str]]) -> builtins.list[str]:
    out: builtins.list[str] = [str(len(pairs))]
    for name, value in pairs:
        out += [name, value]
    return out


def _names(names: builtins.list[str]) -> builtins.list[str]:
    return [str(len(names)), *names]


@functools.lru_cache(maxsize=4096)
def ip_code(ip: str | None) -> str:
    """An address as the indexes order it: ``4`` or ``6`` and its bytes in hex; ``-`` for none.

    Codes of one family have one length, so their lexical order is the numeric one and a
    network is the range from its first to its last address.
    """
    if not ip:
        return "-"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "-"
    return f"{address.version}{address.packed.hex()}"


def where(user_id: str | None, ip: str | None) -> str:
    """Which of the who- and per-address sets a session belongs in (see ``INDEX_LIB``)."""
    return ("a" if user_id is None else "i") + ip_code(ip)


def _score(after: Cursor | None) -> tuple[str, str]:
    """The PAGE script's cursor arguments (score is minus last seen, as in the seen sets)."""
    return ("", "") if after is None else (str(-to_us(after.last_seen)), after.key)


class RedisStore(Store):
    label = "redis"

    def __init__(self, location: Any = None, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(location, options)
        try:
            self.config = redis_client.parse(location, self.options)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.prefix = self.config.prefix
        # Outside a Cluster every key is reachable from one script: indexes move with the data.
        self.inline_index = self.config.mode != "cluster"
        self.index_base = f"{self.prefix}{{idx}}:"
        self.exp_index = self.index_base + "exp"
        self.seen_index = self.index_base + "seen"

    @classmethod
    def check(cls, location: Any, options: Mapping[str, Any]) -> builtins.list[str]:
        return redis_client.problems(location, options or {})

    def describe(self) -> str:
        return redis_client.describe(self.location, self.options)

    # --- key names --------------------------------------------------------

    def session_key(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    # --- running plans ----------------------------------------------------

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.describe(), exc)

    def _run(self, plan: Plan) -> Results:
        with self.guarded():
            return self._run_plan(plan)

    def _run_plan(self, plan: Plan) -> Results:
        client = redis_client.sync_client(self.config)
        try:
            results = self._send(client, plan)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # a new or restarted server, or a new master: load, re-run only those
                for script in {s for i in missing if (s := plan[i].script) is not None}:
                    client.script_load(script.text)
                again = self._send(client, [plan[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return results

    @staticmethod
    def _send(client: Any, plan: Plan) -> Results:
        if len(plan) == 1:
            try:
                return [client.execute_command(*plan[0].args)]
            except ResponseError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        cluster = isinstance(client, redis.cluster.RedisCluster)
        for call in plan:
            if cluster and call.script is not None:
                # Else redis-py's sync cluster pipeline asks a node COMMAND GETKEYS first:
                # one more round trip per script.
                node = client.get_node_from_key(call.args[3])
                pipe.execute_command(*call.args, target_nodes=node)
            else:
                pipe.execute_command(*call.args)
        return list(pipe.execute(raise_on_error=False))

    async def _arun(self, plan: Plan) -> Results:
        with self.guarded():
            return await self._arun_plan(plan)

    async def _arun_plan(self, plan: Plan) -> Results:
        client = redis_client.async_client(self.config)
        try:
            results = await self._asend(client, plan)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:  # a new or restarted server, or a new master: load, re-run only those
                for script in {s for i in missing if (s := plan[i].script) is not None}:
                    await client.script_load(script.text)
                again = await self._asend(client, [plan[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        return results

    @staticmethod
    async def _asend(client: Any, plan: Plan) -> Results:
        if len(plan) == 1:
            try:
                return [await client.execute_command(*plan[0].args)]
            except ResponseError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for call in plan:
            pipe.execute_command(*call.args)
        return list(await pipe.execute(raise_on_error=False))

    def _drive(self, steps: Steps[T]) -> T:
        try:
            plan = next(steps)
            while True:
                plan = steps.send(self._run(plan))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _adrive(self, steps: Steps[T]) -> T:
        try:
            plan = next(steps)
            while True:
                plan = steps.send(await self._arun(plan))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _ok(self, result: Any) -> Any:
        """A command's reply; an error reply means the store is not usable."""
        if isinstance(result, Exception):
            raise self._unavailable(result)
        return result

    # --- records ----------------------------------------------------------

    def _decode(self, key: str, fields: Any) -> SessionRecord | None:
        if isinstance(fields, ResponseError):
            logger.warning(
                "Session %s… in %s is unreadable (%s).", key[:12], self.describe(), fields
            )
            return None
        if not fields:
            return None
        try:
            expires_at = from_us(int(fields["e"]))
            record = SessionRecord(
                data={
                    name[len(DATA) :]: json.loads(value)
                    for name, value in fields.items()
                    if name.startswith(DATA)
                },
                expires_at=expires_at,
                created_at=from_us(int(fields["c"])),
                last_seen=from_us(int(fields["l"])),
                user_id=fields.get("u"),
                ip=fields.get("ip"),
                user_agent=fields.get("ua", ""),
                version=int(fields["v"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "Session %s… in %s is unreadable (%s: %s).",
                key[:12],
                self.describe(),
                type(exc).__name__,
                exc,
            )
            return None
        if expires_at <= datetime.now(timezone.utc):
            return None
        return record

    # --- the contract, written once as steps (sync and async drive them) ---

    def _load_steps(self, key: str) -> Steps[SessionRecord | None]:
        (fields,) = yield [Call(("HGETALL", self.session_key(key)))]
        return self._decode(key, fields)

    def _save_steps(
        self, key: str, record: SessionRecord, must_create: bool, changes: Changes | None
    ) -> Steps[SessionRecord]:
        redis_key = self.session_key(key)
        data = record.data
        incr: builtins.list[str] = []
        if changes is None:  # the whole data
            to_set = [(DATA + name, _json(value)) for name, value in data.items()]
            removed: builtins.list[str] = []
        else:
            to_set = [(DATA + name, _json(value)) for name, value in changes.set.items()]
            removed = [DATA + name for name in changes.removed]
            for name, delta in changes.increments.items():
                incr += [DATA + name, _json(data[name]), _json(delta)]
        # Metadata still as the request loaded it is left out: fewer fields for Redis to write.
        loaded = {} if changes is None or changes.loaded is None else dict(_meta(changes.loaded))
        fields = [(name, v) for name, v in _meta(record) if name not in loaded or loaded[name] != v]
        meta = [(name, value) for name, value in fields if value is not None]
        unset = [name for name, value in fields if value is None]
        op = "create" if must_create else ("replace" if changes is None else "merge")
        exp_score, seen_score = str(to_us(record.expires_at)), str(-to_us(record.last_seen))
        place = where(record.user_id, record.ip)
        args = [op, str(record.version), str(_ms_ceiling(record.expires_at)), key]
        args += [exp_score, seen_score, self.index_base, place, secrets.token_urlsafe(9)]
        args += _flat(meta) + _names(unset) + _flat(to_set) + _names(removed)
        args += [str(len(incr) // 3), *incr]
        user_key = None if record.user_id is None else self.user_key(str(record.user_id))
        if self.inline_index:
            keys = [redis_key, self.exp_index]
            keys += [] if user_key is None else [user_key]
            plan = [_eval(SAVE, keys, args)]
        else:
            only = "nx" if must_create else "xx"
            plan = [
                _eval(SAVE, [redis_key], args),
                self._index_call(only, key, exp_score, seen_score, place),
            ]
            if user_key is not None:
                plan.append(Call(("SADD", user_key, key)))
        results = yield plan
        status, version, conflict, *merged = self._ok(results[0])
        if status != 1 and not self.inline_index:
            yield self._undo_index(key, user_key, results, created=status == 0)
        if status == 0:
            raise CreateError(f"a session with key {key[:12]}… already exists")
        if status == -1:
            raise UpdateError(f"session {key[:12]}… no longer exists")
        if conflict:
            data = {
                name[len(DATA) :]: json.loads(value)
                for name, value in zip(merged[::2], merged[1::2], strict=True)
            }
        return record.with_data(data, int(version))

    def _index_call(self, mode: str, key: str, exp_score: str, seen_score: str, place: str) -> Call:
        """The INDEX script placing one session (see ``INDEX_LIB``'s ``place``)."""
        args = [self.index_base, mode, key, exp_score, seen_score, place]
        return _eval(INDEX, [self.exp_index], args)

    def _unindex_call(self, keys: builtins.list[str]) -> Call:
        """The INDEX script taking sessions out of every index."""
        return _eval(INDEX, [self.exp_index], [self.index_base, "del", *keys])

    def _undo_index(
        self, key: str, user_key: str | None, results: Results, *, created: bool
    ) -> Plan:
        """Take back the index entries a refused Cluster save added."""
        undo = []
        if not created or results[1] == 1:
            undo.append(self._unindex_call([key]))
        if user_key is not None and (not created or results[2] == 1):
            undo.append(Call(("SREM", user_key, key)))
        return undo or [Call(("PING",))]

    def _touch_steps(self, key: str, expires_at: datetime, last_seen: datetime) -> Steps[bool]:
        exp_score, seen_score = str(to_us(expires_at)), str(-to_us(last_seen))
        args = [str(_now_us()), exp_score, str(to_us(last_seen)), str(_ms_ceiling(expires_at))]
        args += [key, seen_score, self.index_base]
        redis_key = self.session_key(key)
        if self.inline_index:
            plan = [_eval(TOUCH, [redis_key, self.exp_index], args)]
        else:
            plan = [
                _eval(TOUCH, [redis_key], args),
                self._index_call("xx", key, exp_score, seen_score, ""),
            ]
        results = yield plan
        touched = self._ok(results[0])
        placed = touched if self.inline_index else self._ok(results[1])
        if not touched and not self.inline_index:
            yield [self._unindex_call([key])]
        elif touched and placed == 2:
            # Saved by a version before the who- and per-address indexes: place it now (once).
            yield from self._reindex_steps(key, exp_score, seen_score)
        return bool(touched)

    def _reindex_steps(self, key: str, exp_score: str, seen_score: str) -> Steps[None]:
        (fields,) = yield [Call(("HMGET", self.session_key(key), "u", "ip"))]
        if isinstance(fields, Exception):
            return
        yield [self._index_call("xx", key, exp_score, seen_score, where(*fields))]

    def _delete_steps(self, key: str) -> Steps[None]:
        # The user's set keeps the member; it is checked whenever read and swept by purge.
        results = yield [Call(("DEL", self.session_key(key))), self._unindex_call([key])]
        for result in results:
            self._ok(result)

    def _exists_steps(self, key: str) -> Steps[bool]:
        (expires,) = yield [Call(("HGET", self.session_key(key), "e"))]
        if isinstance(expires, ResponseError) or expires is None:
            return False
        try:
            return int(expires) > _now_us()
        except ValueError:
            return False

    def _user_steps(self, user_id: str) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        """Every live session of one user (checked against the record), stale members dropped."""
        user_key = self.user_key(user_id)
        (members,) = yield [Call(("SMEMBERS", user_key))]
        members = sorted(self._ok(members))
        if not members:
            return []
        results = yield [Call(("HGETALL", self.session_key(m))) for m in members]
        found, stale = [], []
        for member, fields in zip(members, results, strict=True):
            record = self._decode(member, fields)
            if record is None or record.user_id != user_id:
                stale.append(member)
            else:
                found.append((member, record))
        if stale:
            yield [Call(("SREM", user_key, *stale))]
        return found

    def _count_steps(self, user_id: str | None) -> Steps[int]:
        if user_id is not None:
            return len((yield from self._user_steps(user_id)))
        (count,) = yield [Call(("ZCOUNT", self.exp_index, f"({_now_us()}", "+inf"))]
        return int(self._ok(count))

    def _page_call(
        self,
        *,
        source: str = "seen",
        who: str = "",
        count: int,
        cursor: tuple[str, str] = ("", ""),
        codes: tuple[str, str] = ("", ""),
        prune: int = 0,
    ) -> Call:
        """The PAGE script: prune up to ``prune`` stale entries, then ``count`` entries of
        ``source`` (``"seen"`` or ``"exp"``; ``who`` ``"i"``/``"a"`` for one of the who-sets)
        after ``cursor``, of the addresses from ``codes[0]`` to ``codes[1]`` when given."""
        args = [self.index_base, str(_now_us()), str(prune), source, who, str(count)]
        args += [*cursor, *codes, str(WALK_LIMIT)]
        return _eval(PAGE, [self.exp_index], args)

    def _entries_steps(
        self, count: int, cursor: tuple[str, str], **page: Any
    ) -> Steps[tuple[builtins.list[tuple[str, str]], bool, tuple[str, str]]]:
        """``count`` entries (member, score) after ``cursor``; done; where to go on from."""
        (reply,) = yield [self._page_call(count=count, cursor=cursor, **page)]
        _pruned, flat, done, resume_score, resume_member = self._ok(reply)
        entries = list(zip(flat[::2], flat[1::2], strict=True))
        return entries, bool(done), (resume_score, resume_member) if resume_score else cursor

    def _list_steps(
        self,
        user_id: str | None,
        signed_in: bool | None,
        ip: IPFilter | None,
        after: Cursor | None,
        limit: int,
    ) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        if limit <= 0:
            return []
        network = None if ip is None else as_network(ip)
        if user_id is not None:  # the user's set: small, read whole, filtered and sorted here
            found = yield from self._user_steps(user_id)
            found = [
                (k, r)
                for k, r in found
                if matches(r, signed_in=signed_in, network=network)
                and (after is None or after.comes_before(k, r))
            ]
            found.sort(key=lambda item: (-to_us(item[1].last_seen), item[0]))
            return found[:limit]
        page: dict[str, Any] = {"who": {None: "", True: "i", False: "a"}[signed_in]}
        if network is not None:
            page["codes"] = (
                ip_code(str(network.network_address)),
                ip_code(str(network.broadcast_address)),
            )
        cursor, found, prune = _score(after), [], PRUNE_ON_LIST
        while len(found) < limit:
            want = limit - len(found)
            entries, done, cursor = yield from self._entries_steps(
                want, cursor, prune=prune, **page
            )
            prune = 0
            members = [member for member, _score in entries]
            if members:
                results = yield [Call(("HGETALL", self.session_key(m))) for m in members]
                gone = []
                for member, fields in zip(members, results, strict=True):
                    record = self._decode(member, fields)
                    if record is None:
                        gone.append(member)
                    elif matches(record, signed_in=signed_in, network=network):
                        found.append((member, record))
                    # else: its index entry is older than its last save (by a version that
                    # kept no who/IP sets): left out here, placed right at its next save.
                if gone:
                    yield [self._unindex_call(gone)]
            if done:
                break
        return found

    def _delete_for_user_steps(self, user_id: str, keep: str | None) -> Steps[int]:
        user_key = self.user_key(user_id)
        (members,) = yield [Call(("SMEMBERS", user_key))]
        members = [m for m in sorted(self._ok(members)) if m != keep]
        if not members:
            return 0
        results = yield [_eval(DELETE_IF_OWNER, [self.session_key(m)], [user_id]) for m in members]
        deleted = [m for m, r in zip(members, results, strict=True) if self._ok(r) == 1]
        cleanup = [Call(("SREM", user_key, *members))]
        if deleted:
            cleanup.append(self._unindex_call(deleted))
        yield cleanup
        return len(deleted)

    def _delete_all_steps(self, keep: str | None) -> Steps[int]:
        """Walk the expiry index from now on, a batch at a time, and end what existed when
        this started. A session touched meanwhile moves further along the walk, never
        behind it; one created meanwhile is met and left alone."""
        started = _now_us()
        cursor, ended = (str(started), ""), 0
        while True:
            entries, done, cursor = yield from self._entries_steps(
                DELETE_BATCH, cursor, source="exp"
            )
            members = [member for member, _score in entries if member != keep]
            created = (
                (yield [Call(("HGET", self.session_key(m), "c")) for m in members])
                if members
                else []
            )
            doomed = [
                m
                for m, c in zip(members, created, strict=True)
                if isinstance(c, str) and c.isdigit() and int(c) <= started
            ]
            if doomed:
                results = yield [Call(("DEL", self.session_key(m))) for m in doomed] + [
                    self._unindex_call(doomed)
                ]
                ended += sum(1 for r in results[:-1] if self._ok(r) == 1)
            if done:
                return ended

    # --- sync API ---------------------------------------------------------

    def load(self, key: str) -> SessionRecord | None:
        return self._drive(self._load_steps(key))

    def save(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return self._drive(self._save_steps(key, record, must_create, changes))

    def touch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return self._drive(self._touch_steps(key, expires_at, last_seen))

    def delete(self, key: str) -> None:
        self._drive(self._delete_steps(key))

    def exists(self, key: str) -> bool:
        return self._drive(self._exists_steps(key))

    def count(self, *, user_id: str | None = None) -> int:
        return self._drive(self._count_steps(user_id))

    def estimate_count(self) -> int | None:
        return self.count()  # one ZCOUNT: already cheap

    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> builtins.list[tuple[str, SessionRecord]]:
        return self._drive(self._list_steps(user_id, signed_in, ip, after, limit))

    def delete_all(self, *, keep: str | None = None) -> int:
        return self._drive(self._delete_all_steps(keep))

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return self._drive(self._delete_for_user_steps(user_id, keep))

    def purge_expired(self, batch_size: int = 1000) -> Iterator[int]:
        """Drop index entries of expired sessions (Redis expires the records themselves).

        Yields how many expired sessions each batch removed from the live index, then
        sweeps the per-user sets (one SCAN over ``P u:*``, batch by batch).
        """
        batch_size = max(1, batch_size)
        yield from self._prune_batches(batch_size)
        self._sweep_user_sets(batch_size)

    def _prune_batches(self, batch_size: int) -> Iterator[int]:
        while True:
            (reply,) = self._run([self._page_call(count=0, prune=batch_size)])
            pruned = int(self._ok(reply)[0])
            if pruned:
                yield pruned
            if pruned < batch_size:
                return

    def _sweep_user_sets(self, batch_size: int) -> None:
        client = redis_client.sync_client(self.config)
        pattern = f"{_glob_escape(self.prefix)}u:*"
        try:
            batch: builtins.list[str] = []
            for user_key in client.scan_iter(match=pattern, count=batch_size):
                batch.append(user_key)
                if len(batch) >= batch_size:
                    self._sweep_batch(batch)
                    batch = []
            if batch:
                self._sweep_batch(batch)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _sweep_batch(self, user_keys: builtins.list[str]) -> None:
        sets = self._run([Call(("SMEMBERS", k)) for k in user_keys])
        pairs = [
            (k, m) for k, members in zip(user_keys, sets, strict=True) for m in self._ok(members)
        ]
        if not pairs:
            return
        alive = self._run([Call(("EXISTS", self.session_key(m))) for _k, m in pairs])
        stale = [
            Call(("SREM", k, m)) for (k, m), n in zip(pairs, alive, strict=True) if self._ok(n) == 0
        ]
        if stale:
            self._run(stale)

    def close(self) -> None:
        redis_client.forget(self.config)

    # --- async API (redis.asyncio, one client per event loop) -------------

    async def aload(self, key: str) -> SessionRecord | None:
        return await self._adrive(self._load_steps(key))

    async def asave(
        self,
        key: str,
        record: SessionRecord,
        *,
        must_create: bool = False,
        changes: Changes | None = None,
    ) -> SessionRecord:
        return await self._adrive(self._save_steps(key, record, must_create, changes))

    async def atouch(self, key: str, expires_at: datetime, last_seen: datetime) -> bool:
        return await self._adrive(self._touch_steps(key, expires_at, last_seen))

    async def adelete(self, key: str) -> None:
        await self._adrive(self._delete_steps(key))

    async def aexists(self, key: str) -> bool:
        return await self._adrive(self._exists_steps(key))

    async def acount(self, *, user_id: str | None = None) -> int:
        return await self._adrive(self._count_steps(user_id))

    async def alist(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> builtins.list[tuple[str, SessionRecord]]:
        return await self._adrive(self._list_steps(user_id, signed_in, ip, after, limit))

    async def adelete_all(self, *, keep: str | None = None) -> int:
        return await self._adrive(self._delete_all_steps(keep))

    async def adelete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return await self._adrive(self._delete_for_user_steps(user_id, keep))

    async def aclose(self) -> None:
        """Close this event loop's connections of this store."""
        await redis_client.aforget(self.config)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
