"""Time, injectable: wall clock for `fetched_at`, monotonic clock and sleep for pacing/retries.

Usage::

    clock = SystemClock()
    clock.now()          # timezone-aware UTC datetime
    clock.sleep(0.5)     # returns early when a stop is requested (tasks/signals.py)

Tests pass a clock whose `sleep` advances `monotonic` instantly, so a `Retry-After: 30` is
honoured (and can be asserted) without waiting 30 s. `stopped_by(clock, flag)` is the same
clock whose real sleeps also end when a scoped flag is requested (tasks/signals.py).
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Protocol

from tasks.signals import STOP, StopFlag

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "stopped_by"]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    stop: StopFlag = STOP  # what ends a sleep early

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        # Interruptible: a SIGTERM during a 30 s backoff ends the wait at once; the caller
        # checks STOP before its next attempt.
        self.stop.wait(seconds)


SYSTEM_CLOCK = SystemClock()


def stopped_by(clock: Clock, flag: StopFlag) -> Clock:
    """`clock`, with its sleeps ending as soon as `flag` is requested.

    A `SystemClock` (or subclass) is copied with `flag` as its stop; any other clock is a
    test's, whose sleeps do not really wait, and is returned as it is.
    """
    if not isinstance(clock, SystemClock):
        return clock
    watched = copy.copy(clock)
    watched.stop = flag
    return watched
