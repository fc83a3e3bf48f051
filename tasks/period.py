"""Audit windows: the previous calendar month, and how long a window may be.

previous_month(date(2026, 3, 1))              # (2026-02-01, 2026-02-28)
check_window(date(2026, 1, 1), date(2026, 12, 31))   # ConfigError if reversed, too long, or
                                                     # starting after today (UTC)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tasks.bitbucket.exceptions import ConfigError

__all__ = ["MAX_WINDOW_DAYS", "check_window", "previous_month"]

# Three years: audit periods are a year at most, and a window over the whole calendar
# (0001-9999) took 103 s and 7.8 GB before it was bounded.
MAX_WINDOW_DAYS = 3 * 366


def previous_month(today: date) -> tuple[date, date]:
    """First and last day of the calendar month before `today`'s.

    >>> previous_month(date(2026, 3, 1))
    (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    """
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def check_window(start: date, end: date, today: date | None = None) -> None:
    """A window the audit report can cover: in order, at most MAX_WINDOW_DAYS days, and
    begun by `today` (UTC; a window that ends later reports what is known so far)."""
    if end < start:
        raise ConfigError(f"The window ends ({end}) before it starts ({start}); swap the dates.")
    today = datetime.now(UTC).date() if today is None else today
    if start > today:
        raise ConfigError(
            f"The window starts on {start}, after today ({today}, UTC): no evidence can cover "
            "it yet. Check the dates."
        )
    days = (end - start).days + 1
    if days > MAX_WINDOW_DAYS:
        raise ConfigError(
            f"The window {start}..{end} covers {days} days; an audit-period report covers at "
            f"most {MAX_WINDOW_DAYS} days (3 years). Split it into shorter periods."
        )
