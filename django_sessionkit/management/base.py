"""What every sessionkit command shares: the store, reached through the Store
interface only, and an unreachable store turned into a CommandError."""

from __future__ import annotations

import re
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from django_sessionkit.management import options as parse
from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Store, StoreUnavailable

#: A key that no session has: looking it up proves the store answers.
_PING_KEY = "0" * 64

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_PASSWORD_OPTION = re.compile(r"(password['\"]?\s*[:=]\s*['\"]?)[^'\",\s)}]+", re.IGNORECASE)


def hide_password(text: str) -> str:
    """``text`` with the password of any URL or ``password=…`` replaced by ``***``."""
    return _PASSWORD_OPTION.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", text))


def describe(store: Store) -> str:
    return hide_password(store.describe())


def add_batch_arguments(parser: ArgumentParser, default: int, what: str) -> None:
    """``--batch-size``, ``--sleep`` and ``--max-seconds``, for a command that works through
    the store in batches (``what``: what one batch does, e.g. "Sessions removed per
    statement")."""
    parser.add_argument(
        "--batch-size",
        default=str(default),
        help=f"{what}, 1 to {parse.MAX_BATCH_SIZE:,} (default {default}).",
    )
    parser.add_argument(
        "--sleep", default="0", help="Seconds to pause between batches (default 0)."
    )
    parser.add_argument(
        "--max-seconds",
        default=None,
        help="Stop cleanly after about this many seconds; the next run carries on.",
    )


def batch_options(options: dict[str, Any]) -> tuple[int, float, float | None]:
    """The checked values of :func:`add_batch_arguments`'s options."""
    batch_size = parse.batch_size(options["batch_size"])
    sleep = parse.seconds(options["sleep"], "--sleep")
    max_seconds = options["max_seconds"]
    if max_seconds is not None:
        max_seconds = parse.seconds(max_seconds, "--max-seconds", allow_zero=False)
    return batch_size, sleep, max_seconds


class StoreCommand(BaseCommand):
    """A command over the configured store; ``run`` does the work.

    Before ``run`` the store is asked for one (absent) key, so an unreachable
    store stops the command before it has done anything.
    """

    def handle(self, *args: Any, **options: Any) -> None:
        store = get_store()
        try:
            store.exists(_PING_KEY)
            self.run(store, **options)
        except StoreUnavailable as exc:
            raise self.unreachable(store, exc.error) from exc
        except (OperationalError, InterfaceError) as exc:  # a fast path that went past the Store
            raise self.unreachable(store, exc) from exc

    def unreachable(self, store: Store, error: object) -> CommandError:
        return CommandError(
            f"The session store {describe(store)} is unreachable ({error}); nothing was changed. "
            "Check that it is running and that SESSIONKIT['STORE'] (BACKEND, LOCATION, OPTIONS) "
            "points at it."
        )

    def run(self, store: Store, **options: Any) -> None:
        raise NotImplementedError

    def say(self, message: str, level: int = 1, **options: Any) -> None:
        """Write a line unless ``--verbosity`` is below ``level``."""
        if options.get("verbosity", 1) >= level:
            self.stdout.write(message)

    def confirm(self, question: str, **options: Any) -> bool:
        """Ask ``question``; ``--no-input`` answers yes. Refuses to guess without a terminal."""
        if not options.get("interactive", True):
            return True
        if not sys.stdin.isatty():
            raise CommandError(
                "Confirmation needed but standard input is not a terminal; nothing was changed. "
                "Pass --no-input to go ahead without asking (or --dry-run to only count)."
            )
        answer = input(f"{question} Type 'yes' to continue, or anything else to cancel: ")
        return answer.strip().lower() == "yes"
