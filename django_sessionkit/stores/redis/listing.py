"""Listing, counting and ending many sessions: what the admin and the commands ask of the
Redis store. Each works from the indexes (see :mod:`.keys`) and costs O(page) or O(batch).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from typing import Any

from redis.exceptions import RedisError

from django_sessionkit.signals import session_ended
from django_sessionkit.stores.base import (
    Cursor,
    Expired,
    IPFilter,
    SessionRecord,
    as_network,
    filtered_page,
    from_us,
    ip_code,
    matches,
)
from django_sessionkit.stores.redis import connection
from django_sessionkit.stores.redis.keys import Shards, cursor_args, now_us, where, where_details
from django_sessionkit.stores.redis.plans import Call, Plan, PlanRunner, Steps, eval_call
from django_sessionkit.stores.redis.scripts import DELETE_IF_OWNER, INDEX, PAGE
from django_sessionkit.stores.steps import StepListing

#: Stale index entries removed per ``list`` call (``purge_expired`` removes the rest), while
#: nobody listens to ``session_ended``: with a receiver only the purge prunes, and reports.
PRUNE_ON_LIST = 1000
#: Index entries one call of the PAGE script reads at most when it walks the listing for
#: an IP filter (the next call goes on from there).
WALK_LIMIT = 20_000
#: Sessions ``delete_all`` handles per batch.
DELETE_BATCH = 500
#: Seconds after which a process looks again whether the single index of earlier releases
#: holds sessions (written there by a process of an earlier release, in a rolling upgrade).
LEGACY_RECHECK = 60.0


#: A position in a listing: (score, member) as the PAGE script takes them ('' from the start).
Position = tuple[str, str]
#: One base's page: its entries (member, score), whether it has nothing more, where it stopped.
Page = tuple[builtins.list[tuple[str, str]], bool, Position]


def _entry_order(entry: tuple[str, str]) -> tuple[int, str]:
    """A (member, score) entry as the listing orders it: by score, then member."""
    return int(entry[1]), entry[0]


def _position_order(position: Position) -> tuple[int, str]:
    """A (score, member) position likewise ('' from the start: before everything)."""
    return (int(position[0]) if position[0] else -(1 << 63)), position[1]


class Listing(PlanRunner, StepListing):
    """The many-session half of :class:`~django_sessionkit.stores.redis.RedisStore`."""

    prefix: str
    shards: Shards
    _draining: bool
    _recheck_at: float

    def session_key(self, key: str) -> str:
        raise NotImplementedError

    def user_key(self, user_id: str) -> str:
        raise NotImplementedError

    def _decode(self, key: str, fields: Any) -> SessionRecord | None:
        raise NotImplementedError

    def _index_call(self, mode: str, key: str, exp_score: str, seen_score: str, place: str) -> Call:
        raise NotImplementedError

    @staticmethod
    def _keeps_expired() -> bool:
        """Whether index entries of expired sessions are left for the purge, which reports
        them (while a receiver listens to ``session_ended``), rather than dropped on the way
        by a listing or a failed touch."""
        return session_ended.has_listeners()

    def _unindex_calls(self, keys: builtins.list[str], *, legacy: bool = True) -> Plan:
        """INDEX scripts taking sessions out of their shards' indexes, and out of the single
        index of earlier releases while that may still hold some (``legacy``)."""
        calls = [
            eval_call(INDEX, [base + "exp"], [base, "del", *members])
            for base, members in self.shards.group(keys).items()
        ]
        if legacy and self._legacy_pending():
            calls.append(self._drain_call(keys))
        return calls

    def _drain_call(self, keys: builtins.list[str]) -> Call:
        """Take sessions out of the single index of earlier releases; the reply tells how many
        are left there (see :meth:`_drained`)."""
        legacy = self.shards.legacy
        assert legacy is not None
        return eval_call(INDEX, [legacy + "exp"], [legacy, "del", *keys])

    def _legacy_pending(self) -> bool:
        """Whether sessions may still be indexed in the single index of earlier releases:
        until a reply says it is empty, and again for one call a minute (a process of an
        earlier release may still be writing there during a rolling upgrade)."""
        if self.shards.legacy is None:
            return False
        return self._draining or time.monotonic() >= self._recheck_at

    def _drained(self, left: Any) -> None:
        """Note what a ``_drain_call`` (or a count of the single index) answered."""
        if isinstance(left, int):
            self._draining = left > 0
            self._recheck_at = time.monotonic() + LEGACY_RECHECK

    def _user_steps(self, user_id: str) -> Steps[builtins.list[tuple[str, SessionRecord]]]:
        """Every live session of one user (checked against the record).

        A member whose record is missing is left in the set for the purge to sweep: on a
        Cluster a new session's SADD may land a moment before its save, and dropping it
        here would hide that session from "sign out everywhere" and the session limit.
        A member whose record names another user is dropped."""
        user_key = self.user_key(user_id)
        (members,) = yield [Call(("SMEMBERS", user_key))]
        members = sorted(self._ok(members))
        if not members:
            return []
        results = yield [Call(("HGETALL", self.session_key(m))) for m in members]
        found, stale = [], []
        for member, fields in zip(members, results, strict=True):
            record = self._decode(member, fields)
            if record is None:
                continue
            if record.user_id != user_id:
                stale.append(member)
            else:
                found.append((member, record))
        if stale:
            yield [Call(("SREM", user_key, *stale))]
        return found

    def _bases(self) -> builtins.list[str]:
        """The index bases a listing reads: every shard, and the single index of earlier
        releases while sessions may still be indexed there."""
        bases = list(self.shards.bases)
        if self._legacy_pending():
            assert self.shards.legacy is not None
            bases.append(self.shards.legacy)
        return bases

    def _count_steps(self, user_id: str | None) -> Steps[int]:
        if user_id is not None:
            return len((yield from self._user_steps(user_id)))
        bases = self._bases()
        floor = f"({now_us()}"
        counts = yield [Call(("ZCOUNT", base + "exp", floor, "+inf")) for base in bases]
        counts = [int(self._ok(count)) for count in counts]
        if bases[-1] == self.shards.legacy:
            self._drained(counts[-1])
        return sum(counts)

    def _page_call(
        self,
        base: str,
        *,
        source: str = "seen",
        who: str = "",
        count: int,
        cursor: tuple[str, str] = ("", ""),
        codes: tuple[str, str] = ("", ""),
        prune: int = 0,
        describe: bool = False,
    ) -> Call:
        """The PAGE script: prune up to ``prune`` stale entries (described in the reply's
        sixth item with ``describe``), then ``count`` entries of ``source`` (``"seen"`` or
        ``"exp"``; ``who`` ``"i"``/``"a"`` for one of the who-sets) after ``cursor``, of the
        addresses from ``codes[0]`` to ``codes[1]`` when given."""
        args = [base, str(now_us()), str(prune), source, who, str(count)]
        args += [*cursor, *codes, str(WALK_LIMIT), "1" if describe else ""]
        return eval_call(PAGE, [base + "exp"], args)

    def _page(self, reply: Any, cursor: Position) -> Page:
        _pruned, flat, done, resume_score, resume_member = self._ok(reply)
        entries = list(zip(flat[::2], flat[1::2], strict=True))
        return entries, bool(done), (resume_score, resume_member) if resume_score else cursor

    def _entries_steps(self, base: str, count: int, cursor: Position, **page: Any) -> Steps[Page]:
        """``count`` entries (member, score) of one base after ``cursor``; done; where to go
        on from."""
        (reply,) = yield [self._page_call(base, count=count, cursor=cursor, **page)]
        return self._page(reply, cursor)

    def _merged_steps(
        self, count: int, cursors: dict[str, Position], prune: int, **page: Any
    ) -> Steps[builtins.list[tuple[str, str]]]:
        """Up to ``count`` entries in listing order from every base in ``cursors`` (one
        pipelined round trip: a k-way merge of one page per shard), moving each base's cursor
        on; a base that has nothing more is dropped from ``cursors``.

        An entry is taken only up to the point every unfinished base has covered: a shard
        whose walk (an IP filter) stopped early may still have matches beyond it.
        """
        bases = list(cursors)
        replies = yield [
            self._page_call(base, count=count, cursor=cursors[base], prune=prune, **page)
            for base in bases
        ]
        pages = {base: self._page(r, cursors[base]) for base, r in zip(bases, replies, strict=True)}
        merged = sorted(
            (_entry_order(entry), entry)
            for entries, _done, _resume in pages.values()
            for entry in entries
        )
        covered = [_position_order(resume) for _entries, done, resume in pages.values() if not done]
        limit = min(covered) if covered else None
        taken = [entry for order, entry in merged[:count] if limit is None or order <= limit]
        cut = _entry_order(taken[-1]) if taken else limit
        for base, (entries, done, resume) in pages.items():
            if cut is not None and any(_entry_order(entry) > cut for entry in entries):
                cursors[base] = (str(cut[0]), cut[1])  # the rest of its page comes again
            elif done:
                del cursors[base]
            else:
                cursors[base] = resume
        return taken

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
            theirs = yield from self._user_steps(user_id)
            return filtered_page(
                theirs, signed_in=signed_in, network=network, after=after, limit=limit
            )
        page: dict[str, Any] = {"who": {None: "", True: "i", False: "a"}[signed_in]}
        if network is not None:
            page["codes"] = (
                ip_code(str(network.network_address)),
                ip_code(str(network.broadcast_address)),
            )
        start = cursor_args(after)
        cursors = dict.fromkeys(self._bases(), start)
        found: builtins.list[tuple[str, SessionRecord]] = []
        listed: set[str] = set()  # one session in two bases (mid-upgrade) is listed once
        reporting = self._keeps_expired()
        prune = 0 if reporting else PRUNE_ON_LIST
        while len(found) < limit and cursors:
            entries = yield from self._merged_steps(limit - len(found), cursors, prune, **page)
            prune = 0
            members = [member for member, _score in entries if member not in listed]
            listed.update(members)
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
                if gone and not reporting:
                    yield self._unindex_calls(gone)
        return found

    def _delete_for_user_steps(self, user_id: str, keep: str | None) -> Steps[int]:
        user_key = self.user_key(user_id)
        (members,) = yield [Call(("SMEMBERS", user_key))]
        members = [m for m in sorted(self._ok(members)) if m != keep]
        if not members:
            return 0
        results = yield [
            eval_call(DELETE_IF_OWNER, [self.session_key(m)], [user_id]) for m in members
        ]
        deleted = [m for m, r in zip(members, results, strict=True) if self._ok(r) == 1]
        if deleted:  # the others may be a save in flight: the purge sweeps them if gone
            yield [Call(("SREM", user_key, *deleted)), *self._unindex_calls(deleted)]
        return len(deleted)

    def _delete_all_steps(self, keep: str | None) -> Steps[int]:
        """Walk the expiry index from now on, a batch at a time, and end what existed when
        this started. A session touched meanwhile moves further along the walk, never
        behind it; one created meanwhile is met and left alone."""
        started = now_us()
        cursors = dict.fromkeys(self._bases(), (str(started), ""))
        ended = 0
        while cursors:
            entries = yield from self._merged_steps(DELETE_BATCH, cursors, 0, source="exp")
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
                results = yield [Call(("DEL", self.session_key(m))) for m in doomed]
                ended += sum(1 for r in results if self._ok(r) == 1)
                yield self._unindex_calls(doomed)
        return ended

    def estimate_count(self) -> int | None:
        return self.count()  # one ZCOUNT: already cheap

    def purge_expired(
        self, batch_size: int = 1000, *, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        """Drop index entries of expired sessions (Redis expires the records themselves).

        Yields how many expired sessions each batch removed from the live index, then
        sweeps the per-user sets (one SCAN over ``P u:*``, batch by batch). With ``report``,
        the PAGE script that removes an entry describes it (key, user, expiry, last seen):
        the script is atomic, so only one purge gets each entry.
        """
        batch_size = max(1, batch_size)
        yield from self._prune_batches(batch_size, report)
        self._sweep_user_sets(batch_size)

    def reindex(self, batch_size: int = 500) -> Iterator[int]:
        """Move the sessions still indexed in the single index of earlier releases into
        their shards, a batch at a time (yields how many each batch moved).

        A session is placed in its shard only if nothing placed it there meanwhile (a save
        or touch does that too, with fresher scores), then taken out of the single index.
        """
        legacy = self.shards.legacy
        if legacy is None:
            return
        while True:
            (members,) = self._run([Call(("ZRANGE", legacy + "exp", 0, batch_size - 1))])
            members = list(self._ok(members))
            if not members:
                self._drained(0)
                return
            fields = ("e", "l", "u", "ip", "c")
            found = self._run([Call(("HMGET", self.session_key(m), *fields)) for m in members])
            plan = []
            for member, values in zip(members, found, strict=True):
                expires, seen, user_id, ip, created = self._ok(values)
                if expires is not None and seen is not None:  # else gone: only unindexed
                    place = where(user_id, ip, created)
                    plan.append(self._index_call("nx", member, expires, f"-{seen}", place))
            self._run([*plan, self._drain_call(members)])
            yield len(members)

    def _prune_batches(
        self, batch_size: int, report: builtins.list[Expired] | None = None
    ) -> Iterator[int]:
        """Each round prunes up to ``batch_size`` entries from every shard still holding
        expired ones, in one pipelined round trip; each shard's count is a batch."""
        bases = self._bases()
        page: dict[str, Any] = {"count": 0, "prune": batch_size, "describe": report is not None}
        while bases:
            calls = [self._page_call(b, **page) for b in bases]
            replies = [self._ok(reply) for reply in self._run(calls)]
            if report is not None:
                report += self._expired(
                    [entry for reply in replies for entry in self._described(reply[5])]
                )
            pruned = [int(reply[0]) for reply in replies]
            yield from (n for n in pruned if n)  # each shard's batch on its own
            bases = [b for b, n in zip(bases, pruned, strict=True) if n >= batch_size]

    @staticmethod
    def _described(flat: builtins.list[str]) -> Iterator[Expired]:
        """The PAGE script's description of the entries it pruned."""
        for j in range(0, len(flat), 4):
            member, place, expires, seen = flat[j : j + 4]
            user_id, created_at = where_details(place)
            last_seen = from_us(-int(seen)) if seen else None
            yield Expired(member, user_id, from_us(int(expires)), last_seen, created_at)

    def _expired(self, pruned: builtins.list[Expired]) -> builtins.list[Expired]:
        """The pruned sessions whose record is indeed gone or expired: on a Cluster a touch
        moves the record's expiry before its index entry, and puts the entry back after; a
        session touched in between is alive, not expired."""
        if not pruned:
            return []
        now = now_us()
        found = self._run([Call(("HGET", self.session_key(e.key), "e")) for e in pruned])
        return [
            e
            for e, expires in zip(pruned, found, strict=True)
            if not (isinstance(expires, str) and expires.isdigit() and int(expires) > now)
        ]

    def _sweep_user_sets(self, batch_size: int) -> None:
        client = connection.sync_client(self.config)
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


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
