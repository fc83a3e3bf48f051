"""How long to wait before a retry, and the budget all waits of a workspace share.

Which outcomes are retried at all is decided in `tasks.bitbucket.decisions`.

Usage::

    deadline = Deadline(clock, seconds=900)
    delay = retry_after_seconds(response.headers.get("Retry-After"), clock.now())
    if delay is None:  # the Atlassian Admin API says when instead: X-RateLimit-Reset
        delay = reset_seconds(response.headers.get("X-RateLimit-Reset"), clock.now())
    if delay is None:
        delay = backoff_delay(attempt, base=1.0, cap=30.0, rng=random.Random())
    if delay > deadline.remaining(): give up
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from tasks.bitbucket.clock import Clock
from tasks.canonical import as_utc

__all__ = ["Deadline", "backoff_delay", "reset_seconds", "retry_after_seconds"]


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    >>> from datetime import UTC
    >>> retry_after_seconds("7", datetime(2026, 1, 1, tzinfo=UTC))
    7.0
    >>> retry_after_seconds("Thu, 01 Jan 2026 00:00:09 GMT", datetime(2026, 1, 1, tzinfo=UTC))
    9.0
    """
    return _seconds_until(value, now, number_is_epoch=False, parse_time=parsedate_to_datetime)


def reset_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an `X-RateLimit-Reset` header: an ISO-8601 time (the Atlassian
    Admin API's form) or Unix epoch seconds; None when absent or unreadable.

    >>> from datetime import UTC
    >>> reset_seconds("2026-01-01T00:00:05Z", datetime(2026, 1, 1, tzinfo=UTC))
    5.0
    >>> reset_seconds("1767225607", datetime(2026, 1, 1, tzinfo=UTC))
    7.0
    """
    return _seconds_until(value, now, number_is_epoch=True, parse_time=datetime.fromisoformat)


def _seconds_until(
    value: str | None,
    now: datetime,
    *,
    number_is_epoch: bool,
    parse_time: Callable[[str], datetime],
) -> float | None:
    """A header's wait in seconds (never negative): a number (seconds from now, or a Unix
    time), else a time `parse_time` reads; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value) - (now.timestamp() if number_is_epoch else 0.0)
    except ValueError:
        try:
            seconds = (as_utc(parse_time(value)) - now).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempt-1)))."""
    ceiling = min(cap, base * (2 ** min(attempt - 1, 30)))
    return rng.uniform(0.0, ceiling)


class Deadline:
    """A total time budget, measured on the injected monotonic clock."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._ends_at = clock.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends_at - self._clock.monotonic())
