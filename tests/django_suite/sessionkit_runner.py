"""The test runner (``TEST_RUNNER``) for Django's suite under our engine.

It leaves out the tests ``excluded.txt`` lists for this configuration and writes every
other test's outcome to the JSON file named by ``SESSIONKIT_DJANGO_SUITE_RESULTS``,
which ``python -m tests.django_suite`` reads to count and judge them.
"""

from __future__ import annotations

import json
import os
import re
import traceback
import unittest
from pathlib import Path
from typing import Any

import sessionkit_lists
from django.test.runner import (
    DiscoverRunner,
    ParallelTestSuite,
    RemoteTestResult,
    RemoteTestRunner,
)
from django.test.utils import iter_test_cases

CONFIGURATION = os.environ.get("SESSIONKIT_DJANGO_SUITE_CONFIG", "sqlite")
DETAIL_LIMIT = 6000
# What unittest reports for a failure outside a test: "setUpClass (app.module.Class)".
_FIXTURE = re.compile(r"^(?P<fixture>\w+) \((?P<id>[\w.]+)\)$")

OUTCOME_RANK = {"skipped": 0, "passed": 1, "failed": 2}


class RemoteError(Exception):
    """An error raised in a worker process, carried to the main one as its traceback's text."""


class RemoteFailure(AssertionError):
    """A failed assertion in a worker process, as text."""


def as_text(test: Any, err: Any) -> tuple[type[BaseException], BaseException, None]:
    """``err`` with the exception replaced by its formatted traceback (always picklable)."""
    exc_type, value, tb = err
    text = "".join(traceback.format_exception(exc_type, value, tb))
    failure = getattr(test, "failureException", None) or AssertionError
    kind = RemoteFailure if issubclass(exc_type, failure) else RemoteError
    return kind, kind(text), None


class SubTestText:
    """Stands in for a failed subtest, which may hold objects that cannot be pickled."""

    failureException = AssertionError

    def __init__(self, subtest: Any) -> None:
        self._id, self._text = subtest.id(), str(subtest)
        self._short = subtest.shortDescription()

    def id(self) -> str:
        return self._id

    def shortDescription(self) -> str | None:
        return self._short

    def __str__(self) -> str:
        return self._text


class TextRemoteTestResult(RemoteTestResult):
    """Sends failures from the workers as text, so an unpicklable one cannot stop the run.

    Django's own prints "cannot be pickled" and the whole parallel run ends.
    """

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, as_text(test, err))

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, as_text(test, err))

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, as_text(test, err))

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            subtest, err = SubTestText(subtest), as_text(test, err)
        super().addSubTest(test, subtest, err)


class TextRemoteTestRunner(RemoteTestRunner):
    resultclass = TextRemoteTestResult


class TextParallelTestSuite(ParallelTestSuite):
    runner_class = TextRemoteTestRunner


def test_id(test: Any) -> str:
    if isinstance(test, unittest.suite._ErrorHolder):  # type: ignore[attr-defined]
        match = _FIXTURE.match(test.description)
        return match["id"] if match else test.description
    return str(test.id())


class RecordingResult(unittest.TextTestResult):
    """A TextTestResult that also keeps each test's outcome (also for parallel runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict[str, str]] = {}

    def _record(self, test: Any, outcome: str, detail: str = "") -> None:
        key = test_id(test)
        previous = self.outcomes.get(key)
        if previous and OUTCOME_RANK[previous["outcome"]] > OUTCOME_RANK[outcome]:
            return
        if previous and previous["outcome"] == outcome == "failed":
            detail = previous["detail"] + "\n" + detail
        self.outcomes[key] = {"outcome": outcome, "detail": detail[-DETAIL_LIMIT:]}

    def _text(self, err: Any) -> str:
        if isinstance(err, tuple) and isinstance(err[1], (RemoteError, RemoteFailure)):
            return str(err[1])
        if isinstance(err, tuple) and len(err) == 3:
            return "".join(traceback.format_exception(*err))
        return str(err)

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failed", self._text(err))

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "failed", self._text(err))

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(test, "failed", f"{subtest}\n{self._text(err)}")


class SessionkitRunner(DiscoverRunner):
    parallel_test_suite = TextParallelTestSuite

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exclusions = sessionkit_lists.read(sessionkit_lists.EXCLUDED)
        self.excluded: list[str] = []

    def load_tests_for_label(self, label: str, discover_kwargs: dict[str, Any]) -> Any:
        kept = []
        for test in iter_test_cases(super().load_tests_for_label(label, discover_kwargs)):
            if sessionkit_lists.find(self.exclusions, test.id(), CONFIGURATION):
                self.excluded.append(test.id())
            else:
                kept.append(test)
        return self.test_suite(kept)

    def get_resultclass(self) -> Any:
        return super().get_resultclass() or RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        result = super().run_suite(suite, **kwargs)
        if path := os.environ.get("SESSIONKIT_DJANGO_SUITE_RESULTS"):
            outcomes = getattr(result, "outcomes", {})
            document = {"configuration": CONFIGURATION, "outcomes": outcomes}
            document["excluded"] = sorted(set(self.excluded))
            Path(path).write_text(json.dumps(document, indent=1, sort_keys=True))
        return result
