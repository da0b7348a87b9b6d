"""``manage.py purgesessions``: remove expired sessions in batches (safe in cron)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit.management.base import (
    StoreCommand,
    add_batch_arguments,
    batch_options,
    describe,
)
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
        add_batch_arguments(parser, DEFAULT_BATCH_SIZE, "Sessions removed per statement")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the expired sessions."
        )

    def run(self, store: Store, **options: Any) -> None:
        batch_size, sleep, max_seconds = batch_options(options)
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
