"""The Redis store: sessions in Redis or Valkey, standalone, behind Sentinel, or in a Cluster.

Where to find what:

* :mod:`.store` — :class:`RedisStore`: load, save, touch, delete (one round trip each);
* :mod:`.listing` — listing, counting, purging and ending many sessions (the admin's and
  the commands' side);
* :mod:`.keys` — the key layout and how a record is laid out in its hash;
* :mod:`.scripts` and ``lua/`` — the Lua scripts, one file each, the index helpers
  (``lua/index_lib.lua``) written once;
* :mod:`.plans` — round trips as plans, run sync or async, under the circuit breaker;
* :mod:`.connection` — configuration, connection modes (standalone, Sentinel, Cluster) and
  pools.
"""

from django_sessionkit.stores.base import ip_code
from django_sessionkit.stores.redis.keys import where
from django_sessionkit.stores.redis.store import RedisStore

__all__ = ["RedisStore", "ip_code", "where"]
