"""Skip-or-fail for tests that need a service: skip locally with a how-to, fail under CI=true."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, how: str) -> NoReturn:
    message = f"{what} is not available. {how}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(message)
