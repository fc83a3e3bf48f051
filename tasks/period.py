"""Audit windows."""

from __future__ import annotations

from datetime import date, timedelta


def previous_month(today: date) -> tuple[date, date]:
    """First and last day of the calendar month before `today`'s.

    >>> previous_month(date(2026, 3, 1))
    (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    """
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last
