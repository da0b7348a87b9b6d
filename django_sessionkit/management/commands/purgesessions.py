"""``manage.py purgesessions``: remove expired sessions in batches (safe in cron)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.purge import (
    DEFAULT_BATCH_SIZE,
    PurgeResult,
    count_expired,
    purge,
    summary,
)
from django_sessionkit.stores.base import Store


class Command(StoreCommand):
    help = (
        "Removes expired sessions in batches, never in one unbounded statement. "
        "On stores that expire data themselves (Redis) it cleans the indexes."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--batch-size",
            default=str(DEFAULT_BATCH_SIZE),
            help=f"Sessions removed per statement, 1 to {parse.MAX_BATCH_SIZE:,} "
            f"(default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--sleep", default="0", help="Seconds to pause between batches (default 0)."
        )
        parser.add_argument(
            "--max-seconds",
            default=None,
            help="Stop cleanly after about this many seconds; the next run carries on.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the expired sessions."
        )

    def run(self, store: Store, **options: Any) -> None:
        batch_size = parse.batch_size(options["batch_size"])
        sleep = parse.seconds(options["sleep"], "--sleep")
        max_seconds = options["max_seconds"]
        if max_seconds is not None:
            max_seconds = parse.seconds(max_seconds, "--max-seconds", allow_zero=False)
        if options["dry_run"]:
            self.dry_run(store, **options)
            return
        tty = self.stdout.isatty() and options["verbosity"] >= 1
        total = count_expired(store) if tty else None

        def show(result: PurgeResult) -> None:
            of = f" of {total:,}" if total else ""
            self.stdout.write(
                f"\rPurging: {result.removed:,}{of} removed, {result.batches:,} batches, "
                f"{result.rate:,.0f}/s ",
                ending="",
            )
            self.stdout.flush()

        try:
            result = purge(
                store,
                batch_size=batch_size,
                sleep=sleep,
                max_seconds=max_seconds,
                progress=show if tty else None,
            )
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted: every batch finished so far is committed; run again to go on."
            ) from None
        if tty:
            self.stdout.write("")
        self.say(summary(describe(store), result, max_seconds), **options)

    def dry_run(self, store: Store, **options: Any) -> None:
        expired = count_expired(store)
        if expired is None:
            self.say(
                f"Dry run: {describe(store)} expires sessions by itself and cannot count "
                "expired ones; a purge would only clean its indexes. Nothing was removed.",
                **options,
            )
        else:
            self.say(
                f"Dry run: {expired:,} expired sessions would be removed from "
                f"{describe(store)}. Nothing was removed.",
                **options,
            )
