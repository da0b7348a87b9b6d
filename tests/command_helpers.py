"""Shared pieces of the management command tests."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from django_sessionkit.stores import get_store
from django_sessionkit.stores.base import Cursor, IPFilter, SessionRecord, Store
from tests.store_contract import make_record, new_key


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(name: str, *args: str, **options: Any) -> str:
    """Run a command; return what it wrote to stdout."""
    out = options.pop("stdout", None) or io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO(), **options)
    return str(out.getvalue())


def add(
    store: Store | None = None,
    *,
    key: str | None = None,
    expires_in: timedelta = timedelta(hours=2),
    last_seen: datetime | None = None,
    **fields: Any,
) -> str:
    """Save a session straight into the store; return its key."""
    store = store or get_store()
    key = key or new_key()
    now = timezone.now()
    fields.setdefault("last_seen", last_seen or now)
    store.save(key, make_record(expires_at=now + expires_in, **fields), must_create=True)
    return key


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def down_alias() -> Iterator[str]:
    """A database alias for a PostgreSQL on a port where nothing listens."""
    config = dict(connections.settings["default"])
    config.update(
        ENGINE="django.db.backends.postgresql",
        HOST="127.0.0.1",
        PORT=free_port(),
        NAME="nowhere",
        USER="postgres",
        PASSWORD="s3cret-password",
        OPTIONS={"connect_timeout": 2},
    )
    connections.settings["down"] = config
    yield "down"
    connections["down"].close()
    del connections["down"]
    del connections.settings["down"]


class ThroughInterface(Store):
    """A DatabaseStore seen only through the Store interface (no fast paths apply)."""

    def __init__(self, inner: Store) -> None:
        super().__init__("through-interface")
        self.inner = inner

    def load(self, key: str) -> SessionRecord | None:
        return self.inner.load(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def count(self, *, user_id: str | None = None) -> int:
        return self.inner.count(user_id=user_id)

    def list(
        self,
        *,
        user_id: str | None = None,
        signed_in: bool | None = None,
        ip: IPFilter | None = None,
        after: Cursor | None = None,
        limit: int = 50,
    ) -> list[tuple[str, SessionRecord]]:
        return self.inner.list(
            user_id=user_id, signed_in=signed_in, ip=ip, after=after, limit=limit
        )

    def delete_for_user(self, user_id: str, *, keep: str | None = None) -> int:
        return self.inner.delete_for_user(user_id, keep=keep)

    def purge_expired(self, batch_size: int = 1000) -> Iterator[int]:
        return self.inner.purge_expired(batch_size)
