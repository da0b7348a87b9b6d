"""Listing, counting and ending many sessions: what the admin and the commands ask of the
Redis store. Each works from the indexes (see :mod:`.keys`) and costs O(page) or O(batch).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from redis.exceptions import RedisError

from django_sessionkit.stores.base import (
    Cursor,
    IPFilter,
    SessionRecord,
    as_network,
    matches,
    to_us,
)
from django_sessionkit.stores.redis import connection
from django_sessionkit.stores.redis.keys import cursor_args, ip_code, now_us
from django_sessionkit.stores.redis.plans import Call, PlanRunner, Steps, eval_call
from django_sessionkit.stores.redis.scripts import DELETE_IF_OWNER, INDEX, PAGE

#: Stale index entries removed per ``list`` call (``purge_expired`` removes the rest).
PRUNE_ON_LIST = 1000
#: Index entries one call of the PAGE script reads at most when it walks the listing for
#: an IP filter (the next call goes on from there).
WALK_LIMIT = 20_000
#: Sessions ``delete_all`` handles per batch.
DELETE_BATCH = 500


class Listing(PlanRunner):
    """The many-session half of :class:`~django_sessionkit.stores.redis.RedisStore`."""

    prefix: str
    index_base: str
    exp_index: str

    def session_key(self, key: str) -> str:
        raise NotImplementedError

    def user_key(self, user_id: str) -> str:
        raise NotImplementedError

    def _decode(self, key: str, fields: Any) -> SessionRecord | None:
        raise NotImplementedError

    def _unindex_call(self, keys: builtins.list[str]) -> Call:
        """The INDEX script taking sessions out of every index."""
        return eval_call(INDEX, [self.exp_index], [self.index_base, "del", *keys])

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
        (count,) = yield [Call(("ZCOUNT", self.exp_index, f"({now_us()}", "+inf"))]
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
        args = [self.index_base, str(now_us()), str(prune), source, who, str(count)]
        args += [*cursor, *codes, str(WALK_LIMIT)]
        return eval_call(PAGE, [self.exp_index], args)

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
        cursor, found, prune = cursor_args(after), [], PRUNE_ON_LIST
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
        results = yield [
            eval_call(DELETE_IF_OWNER, [self.session_key(m)], [user_id]) for m in members
        ]
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
        started = now_us()
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


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
