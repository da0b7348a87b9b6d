"""Round trips as plans: every store operation is written once, as steps, and run sync or
async.

A step yields a :data:`Plan` (the commands of one round trip, pipelined; on a Cluster
they go to their nodes in parallel) and receives the :data:`Results`. ``_drive`` runs the
steps with the sync client, ``_adrive`` with the event loop's async client. A script the
server does not know yet (a new or restarted server, a new master) is loaded and only the
commands that needed it are sent again.
"""

from __future__ import annotations

import builtins
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.cluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from django_sessionkit.stores.base import StoreUnavailable
from django_sessionkit.stores.redis import connection
from django_sessionkit.stores.redis.scripts import Script
from django_sessionkit.stores.steps import StepStore

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One command of a round trip; ``script`` is set for EVALSHA calls (reloaded on NOSCRIPT)."""

    args: tuple[Any, ...]
    script: Script | None = None


Plan = builtins.list[Call]
Results = builtins.list[Any]
Steps = Generator[Plan, Results, T]


def eval_call(script: Script, keys: builtins.list[str], args: builtins.list[Any]) -> Call:
    return Call(("EVALSHA", script.sha, len(keys), *keys, *args), script)


class PlanRunner(StepStore):
    """Runs plans against this store's connection pools, under the circuit breaker."""

    config: connection.RedisConfig

    # --- running plans ----------------------------------------------------

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(self.describe(), exc)

    def _run(self, plan: Plan) -> Results:
        with self.guarded():
            return self._run_plan(plan)

    def _run_plan(self, plan: Plan) -> Results:
        client = connection.sync_client(self.config)
        lane = connection.sync_lane(self.config)
        try:
            if lane is not None:  # standalone: the connection API itself, see Lane
                results = lane.run([call.args for call in plan])
            else:
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
        client = connection.async_client(self.config)
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

    def _drive(self, steps: Steps[T], *, admin: bool = False) -> T:
        try:
            plan = next(steps)
            while True:
                plan = steps.send(self._run(plan))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _adrive(self, steps: Steps[T], *, admin: bool = False) -> T:
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
