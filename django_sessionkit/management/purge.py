"""The batched purge behind ``purgesessions`` and ``clearsessions``.

Every batch is one bounded statement (or pipeline) in the store's
``purge_expired``; between batches we may sleep, and we stop cleanly once the
time budget would be overrun, so a purge never holds long locks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

from django_sessionkit import lifecycle
from django_sessionkit.stores.base import Store

DEFAULT_BATCH_SIZE = 1000


def count_expired(store: Store) -> int | None:
    """How many expired sessions the store still holds, or ``None`` if it cannot say."""
    return store.count_expired()


@dataclasses.dataclass
class PurgeResult:
    removed: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped_early: bool = False  # --max-seconds ran out before the store was clean

    @property
    def rate(self) -> float:
        return self.removed / self.seconds if self.seconds > 0 else 0.0


def purge(
    store: Store,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    sleep: float = 0.0,
    max_seconds: float | None = None,
    progress: Callable[[PurgeResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PurgeResult:
    """Remove expired sessions batch by batch; ``progress`` is called after each batch.

    Each batch's sessions are reported to ``session_ended`` receivers (see
    :func:`django_sessionkit.lifecycle.purge`). Ended sessions kept past
    ``SESSIONKIT["KEEP_ENDED"]`` go first (no query while it is 0)."""
    from django_sessionkit import audit

    audit.purge(batch_size)
    return in_batches(
        lifecycle.purge(store, batch_size),
        batch_size=batch_size,
        sleep=sleep,
        max_seconds=max_seconds,
        progress=progress,
        clock=clock,
    )


def in_batches(
    batches: Iterator[int],
    *,
    batch_size: int,
    sleep: float = 0.0,
    max_seconds: float | None = None,
    progress: Callable[[PurgeResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PurgeResult:
    """Run a store's batches (each yields how many sessions it handled), sleeping between
    them and stopping before one that would overrun ``max_seconds``."""
    result = PurgeResult()
    started = clock()
    try:
        for removed in batches:
            result.removed += removed
            result.batches += 1
            result.seconds = clock() - started
            if progress is not None:
                progress(result)
            average = result.seconds / result.batches
            # Stop before a batch that would likely end past the budget.
            if max_seconds is not None and result.seconds + sleep + average > max_seconds:
                result.stopped_early = True
                break
            if sleep and removed >= batch_size:
                time.sleep(sleep)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        result.seconds = clock() - started
    return result


def summary(where: str, result: PurgeResult, max_seconds: float | None = None) -> str:
    """The one line a purge reports."""
    line = (
        f"Purged {result.removed:,} expired sessions from {where} in "
        f"{result.batches:,} batches, {result.seconds:.1f}s ({result.rate:,.0f}/s)."
    )
    if result.stopped_early:
        line += f" Stopped at --max-seconds {max_seconds:g}; more may remain."
    return line
