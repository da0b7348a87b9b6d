"""The ``floor_redis`` engine: no sessions at all, only the Redis round trips the design's
budget allows each case (untouched 0, first 1, read 1, write 2, login 3), sent as PINGs with
redis-py, hiredis and a kept connection pool, as the Redis store has them.

No engine that keeps its sessions in Redis can beat this on the same machine: the distance
between it and ``sk_redis`` is what everything else costs (the store's commands on the Redis
side, hashing, signing, JSON, metadata, the cookie), and the distance between it and the
ceiling is what the round trips themselves cost here. Under ASGI the PINGs are awaited on the
event loop with redis.asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

ROUND_TRIPS = {"/first/": 1, "/read/": 1, "/write/": 2, "/login/": 3}

_sync: list[redis.Redis] = []
_async: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}


class RoundTrips:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.url = f"{settings.REDIS_URL}/3"
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        if not _sync:
            _sync.append(redis.Redis.from_url(self.url))
        for _ in range(ROUND_TRIPS.get(request.path_info, 0)):
            _sync[0].execute_command("PING")
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        loop = asyncio.get_running_loop()
        client = _async.get(loop)
        if client is None:
            client = _async[loop] = redis.asyncio.Redis.from_url(self.url)
        for _ in range(ROUND_TRIPS.get(request.path_info, 0)):
            await client.execute_command("PING")
        response: Awaitable[HttpResponseBase] = self.get_response(request)
        return await response
