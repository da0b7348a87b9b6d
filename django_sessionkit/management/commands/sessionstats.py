"""``manage.py sessionstats``: how many sessions, whose, expiring when, in which store."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.lookup import usernames
from django_sessionkit.management.stats import Stats, collect
from django_sessionkit.stores.base import Store

FORMATS = ("text", "json")


class Command(StoreCommand):
    help = (
        "Shows live sessions (signed in and anonymous), the users with the most sessions, "
        "how many expire within the next hour and day, and which store holds them."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--top", default="10", help="How many top users to show (default 10).")
        parser.add_argument("--format", default="text", help="text (default) or json.")

    def run(self, store: Store, **options: Any) -> None:
        top = parse.batch_size(options["top"], "--top")
        fmt = str(options["format"]).lower()
        if fmt not in FORMATS:
            raise CommandError(
                f"--format {options['format']!r} is not accepted: use one of {', '.join(FORMATS)}."
            )
        stats = collect(store, top=top)
        names = usernames(user_id for user_id, _ in stats.top_users)
        if fmt == "json":
            self.stdout.write(json.dumps(self.as_dict(store, stats, names), indent=2))
            return
        self.stdout.write(f"Store:                 {describe(store)} [{type(store).__name__}]")
        self.stdout.write(f"Live sessions:         {stats.live:,}")
        self.stdout.write(f"  signed in:           {stats.signed_in:,}")
        self.stdout.write(f"  anonymous:           {stats.anonymous:,}")
        self.stdout.write(f"Expiring within 1 h:   {stats.expiring_within_hour:,}")
        self.stdout.write(f"Expiring within 1 day: {stats.expiring_within_day:,}")
        self.stdout.write(f"Top users by sessions{'' if stats.top_users else ': none'}")
        for user_id, count in stats.top_users:
            self.stdout.write(f"  {count:>8,}  {names.get(user_id, '(deleted)')} (id {user_id})")

    @staticmethod
    def as_dict(store: Store, stats: Stats, names: dict[str, str]) -> dict[str, Any]:
        return {
            "store": {"backend": type(store).__name__, "location": describe(store)},
            "live": stats.live,
            "signed_in": stats.signed_in,
            "anonymous": stats.anonymous,
            "expiring_within_hour": stats.expiring_within_hour,
            "expiring_within_day": stats.expiring_within_day,
            "top_users": [
                {"user_id": user_id, "username": names.get(user_id), "sessions": count}
                for user_id, count in stats.top_users
            ],
        }
