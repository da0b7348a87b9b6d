"""``manage.py clearsessions`` without django.contrib.sessions: the store's batched purge."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Removes expired sessions from the session store (in batches)."

    def handle(self, *args: Any, **options: Any) -> None:
        engine = import_module(settings.SESSION_ENGINE)
        try:
            engine.SessionStore.clear_expired()
        except NotImplementedError as exc:
            raise CommandError(
                f"Session engine '{settings.SESSION_ENGINE}' doesn't support clearing expired "
                "sessions."
            ) from exc
