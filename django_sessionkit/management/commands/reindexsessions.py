"""``manage.py reindexsessions``: finish moving sessions into this release's index layout."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.purge import PurgeResult, in_batches
from django_sessionkit.stores.base import Store

DEFAULT_BATCH_SIZE = 500


class Command(StoreCommand):
    help = (
        "Moves sessions that an earlier release indexed into this release's layout (on "
        "Redis: from the single {idx} index into the index shards), in batches. Sessions "
        "also move by themselves at their next save or touch; this finishes the move."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--batch-size",
            default=str(DEFAULT_BATCH_SIZE),
            help=f"Sessions moved per round trip, 1 to {parse.MAX_BATCH_SIZE:,} "
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

    def run(self, store: Store, **options: Any) -> None:
        batch_size = parse.batch_size(options["batch_size"])
        sleep = parse.seconds(options["sleep"], "--sleep")
        max_seconds = options["max_seconds"]
        if max_seconds is not None:
            max_seconds = parse.seconds(max_seconds, "--max-seconds", allow_zero=False)
        tty = self.stdout.isatty() and options["verbosity"] >= 1

        def show(result: PurgeResult) -> None:
            self.stdout.write(
                f"\rReindexing: {result.removed:,} sessions moved, {result.batches:,} "
                f"batches, {result.rate:,.0f}/s ",
                ending="",
            )
            self.stdout.flush()

        try:
            result = in_batches(
                store.reindex(batch_size),
                batch_size=batch_size,
                sleep=sleep,
                max_seconds=max_seconds,
                progress=show if tty else None,
            )
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted: every batch finished so far is done; run again to go on."
            ) from None
        if tty:
            self.stdout.write("")
        line = (
            f"Moved {result.removed:,} sessions into the current index layout of "
            f"{describe(store)} in {result.batches:,} batches, {result.seconds:.1f}s."
        )
        if result.stopped_early:
            line += f" Stopped at --max-seconds {max_seconds:g}; run again to finish."
        elif result.removed == 0:
            line = f"Nothing to move: {describe(store)} is in the current index layout."
        else:
            line += " Done: nothing is left in the earlier layout."
        self.say(line, **options)
