"""``manage.py clearsessions``: Django's command, run through sessionkit's batched purge.

With ``SESSION_ENGINE = "django_sessionkit.engine"`` it is ``purgesessions``
with the default batch size (quiet unless ``--verbosity 2``); with another
engine it does what Django's own command does.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from django_sessionkit.management.base import StoreCommand, describe
from django_sessionkit.management.purge import purge, summary
from django_sessionkit.stores.base import Store

ENGINE = "django_sessionkit.engine"


class Command(StoreCommand):
    help = "Removes expired sessions from the session store (in batches)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.SESSION_ENGINE == ENGINE:
            super().handle(*args, **options)
            return
        engine = import_module(settings.SESSION_ENGINE)
        try:
            engine.SessionStore.clear_expired()
        except NotImplementedError as exc:
            raise CommandError(
                f"Session engine '{settings.SESSION_ENGINE}' doesn't support clearing expired "
                "sessions."
            ) from exc

    def run(self, store: Store, **options: Any) -> None:
        result = purge(store)
        self.say(summary(describe(store), result), level=2, **options)
