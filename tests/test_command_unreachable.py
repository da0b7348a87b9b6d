"""Every command stops with a CommandError naming the store when the store is unreachable.

Not a django_db test: Django's test case would forbid the extra alias, so the
database blocker is lifted by hand for a store that cannot be reached anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management.base import CommandError
from django.test import override_settings
from pytest_django import DjangoDbBlocker

from tests.command_helpers import down_alias, run

__all__ = ["down_alias"]  # a fixture


@pytest.fixture
def unreachable(down_alias: str, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    with (
        django_db_blocker.unblock(),
        override_settings(SESSIONKIT={"STORE": {"LOCATION": down_alias}}),
    ):
        yield


@pytest.mark.usefixtures("unreachable")
@pytest.mark.parametrize(
    "command",
    [
        ["purgesessions"],
        ["purgesessions", "--dry-run"],
        ["clearsessions"],
        ["listsessions"],
        ["revokesessions", "--all", "--no-input"],
        ["sessionstats"],
        ["importsessions", "--from", "db"],
    ],
    ids=lambda c: " ".join(c),
)
def test_an_unreachable_store_is_a_command_error_naming_it(command: list[str]) -> None:
    with pytest.raises(CommandError) as caught:
        run(*command)
    message = str(caught.value)
    assert "The session store database 'down'" in message and "is unreachable" in message
    assert "Connection refused" in message or "connection failed" in message
    assert "SESSIONKIT['STORE']" in message and "nothing was changed" in message
    assert "s3cret" not in message
