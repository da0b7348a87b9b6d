"""``manage.py revokesessions``: end sessions, so their cookies sign nobody in again."""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError

from django_sessionkit import lifecycle
from django_sessionkit.management import options as parse
from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.lookup import (
    HANDLE_LENGTH,
    find_by_prefix,
    handle_of,
    resolve_user,
)
from django_sessionkit.stores.base import Store

#: How many ambiguous matches an error message lists.
SHOWN_MATCHES = 5


class Command(StoreCommand):
    help = (
        "Ends sessions: all of one user's (--user), one session (--session KEY-PREFIX as "
        "listsessions shows it) or every session (--all). Asks first unless --no-input."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--user", help="End every session of this user (username or id).")
        target.add_argument(
            "--session",
            metavar="KEY_PREFIX",
            help=f"End the one session whose key starts with this (at least "
            f"{parse.MIN_PREFIX_LENGTH} hex characters), or whose session_key this is.",
        )
        target.add_argument("--all", action="store_true", help="End every live session.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be ended."
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def run(self, store: Store, **options: Any) -> None:
        what, count, end = self.target(store, options)
        if options["dry_run"]:
            self.say(f"Dry run: {count:,} {what} would be ended. Nothing was changed.", **options)
            return
        if count == 0:
            self.say(f"No live sessions to end ({what}).", **options)
            return
        question = f"End {count:,} {what} in {describe(store)}?"
        if not self.confirm(question, **options):
            self.say("Cancelled: no session was ended.", **options)
            return
        ended = end()
        self.say(f"Ended {ended:,} {what}.", **options)

    def target(self, store: Store, options: dict[str, Any]) -> tuple[str, int, Callable[[], int]]:
        """What is revoked (in words), how many sessions now, and the function that ends them."""
        if options["user"] is not None:
            user_id, label = resolve_user(store, options["user"])
            return (
                f"session(s) of user {label}",
                store.count(user_id=user_id),
                lambda: lifecycle.end_user(store, user_id, by="command"),
            )
        if options["session"] is not None:
            key = self.one_session(store, parse.key_prefix(options["session"]))

            def end_one() -> int:
                lifecycle.end_one(store, key, store.load(key), by="command")
                return 1

            return f"session {handle_of(key)}", 1, end_one
        if options["all"]:
            return (
                "session(s), every one in the store",
                store.count(),
                lambda: lifecycle.end_all(store, by="command"),
            )
        raise CommandError(
            "Say which sessions to end: --user USERNAME_OR_ID, --session KEY_PREFIX or --all."
        )

    def one_session(self, store: Store, prefix: str) -> str:
        matches = find_by_prefix(store, prefix, limit=SHOWN_MATCHES + 1)
        if not matches:
            raise CommandError(
                f"--session {prefix!r} matches no live session. Give the start of a key as "
                "listsessions shows it (it may have expired or been ended already)."
            )
        if len(matches) > 1:
            listed = matches[:SHOWN_MATCHES]
            shown = ", ".join(handle_of(key, HANDLE_LENGTH + 4) for key, _ in listed)
            more = " and more" if len(matches) > SHOWN_MATCHES else ""
            raise CommandError(
                f"--session {prefix!r} matches several sessions ({shown}{more}); nothing was "
                "ended. Give more characters of the key, enough to match exactly one."
            )
        return matches[0][0]
