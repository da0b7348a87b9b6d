"""A circuit breaker per store and process: a sick store answers 503 at once.

Closed (normal): every call goes to the store. A call that times out opens the circuit
at once (a stalled server would hold every request for the whole timeout); other
failures open it after ``BREAKER_FAILURES`` in a row (a refused connection fails fast
anyway). Open: calls fail at once with :class:`StoreUnavailable`, for
``BREAKER_COOL_DOWN`` seconds. Then one call goes through as the probe, while the others
still fail at once: its success closes the circuit, its failure opens it again.

Both options are store ``OPTIONS``; ``BREAKER_COOL_DOWN = 0`` turns the breaker off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("django_sessionkit")

OPTIONS: dict[str, tuple[type, ...]] = {
    "BREAKER_FAILURES": (int,),
    "BREAKER_COOL_DOWN": (int, float),
}
DEFAULT_FAILURES = 3
DEFAULT_COOL_DOWN = 0.5


def problems(options: Mapping[str, Any]) -> list[str]:
    """What is wrong with the breaker's options, one sentence each."""
    found = []
    failures = options.get("BREAKER_FAILURES", DEFAULT_FAILURES)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        found.append(f"OPTIONS['BREAKER_FAILURES'] is {failures!r}; it must be an int >= 1.")
    cool_down = options.get("BREAKER_COOL_DOWN", DEFAULT_COOL_DOWN)
    if isinstance(cool_down, bool) or not isinstance(cool_down, (int, float)) or cool_down < 0:
        found.append(
            f"OPTIONS['BREAKER_COOL_DOWN'] is {cool_down!r}; it must be a number of seconds "
            ">= 0 (0 turns the circuit breaker off)."
        )
    return found


class CircuitOpen(RuntimeError):
    """The store failed just now; it is not asked again until the cool-down ends."""


class CircuitBreaker:
    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.failures_to_open = int(options.get("BREAKER_FAILURES", DEFAULT_FAILURES))
        self.cool_down = float(options.get("BREAKER_COOL_DOWN", DEFAULT_COOL_DOWN))
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until: float | None = None  # None: closed
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def admit(self) -> None:
        """Raise :class:`CircuitOpen` unless this call may go to the store."""
        if self._open_until is None:  # closed: no lock on the common path
            return
        with self._lock:
            if self._open_until is None:
                return
            remaining = self._open_until - time.monotonic()
            if remaining > 0 or self._probing:
                raise CircuitOpen(
                    f"circuit open after repeated failures; next attempt in "
                    f"{max(remaining, 0):.2f} s"
                )
            self._probing = True  # this call is the probe

    def succeeded(self) -> None:
        if self._failures == 0 and self._open_until is None:
            return
        with self._lock:
            was_open = self._open_until is not None
            self._failures, self._open_until, self._probing = 0, None, False
        if was_open:
            logger.warning("Session store %s answers again; circuit closed.", self.name)

    def failed(self, *, timed_out: bool) -> None:
        if self.cool_down <= 0:
            return
        with self._lock:
            self._failures += 1
            if not (timed_out or self._probing or self._failures >= self.failures_to_open):
                return
            was_open = self._open_until is not None
            self._open_until = time.monotonic() + self.cool_down
            self._probing = False
        if not was_open:
            logger.error(
                "Session store %s failed (%s); circuit open: requests get a 503 at once "
                "for %.2f s, then one request probes it.",
                self.name,
                "timed out" if timed_out else f"{self._failures} failures in a row",
                self.cool_down,
            )
