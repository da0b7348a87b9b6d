"""``manage.py importsessions``: bring Django's live sessions over, so switching engines
logs nobody out."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.importer import ImportCounts, import_sessions
from django_sessionkit.management.legacy import source_for
from django_sessionkit.stores.base import Store

SOURCES = ("db", "cached_db", "cache")


class Command(StoreCommand):
    help = (
        "Copies the live sessions of Django's own session engines (db, cached_db, cache) "
        "into the sessionkit store. A browser's old sessionid cookie then finds its session. "
        "Safe to run again: sessions already in the store are left as they are."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            required=True,
            help="The engine the sessions come from: db, cached_db or cache.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="For db / cached_db: the database holding django_session (default 'default').",
        )
        parser.add_argument(
            "--cache",
            default=None,
            help="For cache: the cache alias (default SESSION_CACHE_ALIAS).",
        )
        parser.add_argument(
            "--batch-size", default="500", help="Sessions read per round trip (default 500)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be imported."
        )

    def run(self, store: Store, **options: Any) -> None:
        batch_size = parse.batch_size(options["batch_size"])
        source = source_for(
            str(options["source"]).lower(),
            database=options["database"],
            cache=options["cache"] or settings.SESSION_CACHE_ALIAS,
        )
        source.check()
        dry_run = options["dry_run"]
        counts = import_sessions(store, source, batch_size=batch_size, dry_run=dry_run)
        self.say(self.summary(store, source.label, counts, dry_run), **options)
        for problem, number in sorted(counts.problems.items()):
            self.stderr.write(f"Skipped {number:,}: {problem}.")
        if counts.already_present and not dry_run:
            self.stderr.write(
                "This looks like a second import. Sessions that were imported before and have "
                "since been rotated, logged out or revoked were imported again from the old "
                "table. Import once, when you switch engines, then empty the old session table."
            )

    @staticmethod
    def summary(store: Store, label: str, counts: ImportCounts, dry_run: bool) -> str:
        verb = "Dry run: would import" if dry_run else "Imported"
        skipped = counts.undecodable + counts.not_storable
        line = (
            f"{verb} {counts.imported:,} of {counts.read:,} live sessions from {label} into "
            f"{describe(store)}; {counts.already_present:,} were already there"
        )
        line += f", {skipped:,} skipped." if skipped else "."
        return line + (" Nothing was changed." if dry_run else "")
