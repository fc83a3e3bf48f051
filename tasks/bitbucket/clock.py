"""Time, injectable: wall clock for `fetched_at`, monotonic clock and sleep for pacing/retries.

Usage::

    clock = SystemClock()
    clock.now()          # timezone-aware UTC datetime
    clock.sleep(0.5)

Tests pass a clock whose `sleep` advances `monotonic` instantly, so a `Retry-After: 30` is
honoured (and can be asserted) without waiting 30 s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
