"""Figures about live sessions for ``sessionstats``.

DatabaseStore answers with a few aggregate queries; any other store is read
once through ``iter_all`` (memory grows with the number of distinct users,
not of sessions). A store may offer ``stats(top=…)`` returning :class:`Stats`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Count, Q

from django_sessionkit.models import Session
from django_sessionkit.stores.base import Store, utcnow
from django_sessionkit.stores.database import DatabaseStore


@dataclasses.dataclass
class Stats:
    live: int = 0
    signed_in: int = 0
    expiring_within_hour: int = 0
    expiring_within_day: int = 0
    top_users: list[tuple[str, int]] = dataclasses.field(default_factory=list)

    @property
    def anonymous(self) -> int:
        return self.live - self.signed_in


def collect(store: Store, *, top: int = 10) -> Stats:
    now = utcnow()
    own = getattr(store, "stats", None)
    if callable(own):
        stats: Stats = own(top=top)
        return stats
    if isinstance(store, DatabaseStore):
        return _from_database(store, now, top)
    return _from_iteration(store, now, top)


def _from_database(store: DatabaseStore, now: datetime, top: int) -> Stats:
    live = Session.objects.using(store.alias).filter(expires_at__gt=now)
    totals = live.aggregate(
        live=Count("key"),
        signed_in=Count("key", filter=Q(user_id__isnull=False)),
        hour=Count("key", filter=Q(expires_at__lte=now + timedelta(hours=1))),
        day=Count("key", filter=Q(expires_at__lte=now + timedelta(days=1))),
    )
    users = (
        live.filter(user_id__isnull=False)
        .values("user_id")
        .annotate(sessions=Count("key"))
        .order_by("-sessions", "user_id")[:top]
    )
    return Stats(
        live=totals["live"],
        signed_in=totals["signed_in"],
        expiring_within_hour=totals["hour"],
        expiring_within_day=totals["day"],
        top_users=[(row["user_id"], row["sessions"]) for row in users],
    )


def _from_iteration(store: Store, now: datetime, top: int) -> Stats:
    stats = Stats()
    per_user: Counter[str] = Counter()
    hour, day = now + timedelta(hours=1), now + timedelta(days=1)
    for _key, record in store.iter_all():
        stats.live += 1
        if record.user_id is not None:
            stats.signed_in += 1
            per_user[record.user_id] += 1
        stats.expiring_within_hour += record.expires_at <= hour
        stats.expiring_within_day += record.expires_at <= day
    stats.top_users = sorted(per_user.items(), key=lambda item: (-item[1], item[0]))[:top]
    return stats
