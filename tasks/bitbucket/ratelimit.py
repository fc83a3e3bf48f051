"""Client-side pacing: stay under the hourly request budget before Bitbucket answers 429.

Bitbucket counts requests per credential in a rolling hour. `RequestPacer` mirrors that
with a sliding window, shared by every workspace collected with the same credential
(`pacer_for`), and thread-safe. It never sleeps itself: `reserve` books the next slot and
returns how long the caller must wait, so a test clock can skip the wait.

Usage::

    pacer = pacer_for(settings)               # one per (API, credential, budget)
    clock.sleep(pacer.reserve(clock.monotonic()))
    # Bitbucket said X-RateLimit-NearLimit: true → space requests evenly from now on
    pacer.slow_down(3600 / settings.max_requests_per_hour)
"""

from __future__ import annotations

import threading
from collections import deque

from tasks.bitbucket.config import BitbucketSettings
from tasks.signals import STOP, StopFlag

__all__ = ["RequestPacer", "pacer_for"]

WINDOW_SECONDS = 3600.0


class RequestPacer:
    def __init__(self, max_per_window: int, window: float = WINDOW_SECONDS) -> None:
        self.max_per_window = max_per_window
        self.window = window
        self._slots: deque[float] = deque()  # booked request times, non-decreasing
        self._min_interval = 0.0
        # How many times the pace was slowed: a response to a request sent before the
        # latest slow-down says nothing about the limit now (see `relax`).
        self.slowdowns = 0
        self._lock = threading.Lock()

    @property
    def slowed(self) -> bool:
        return self._min_interval > 0

    def reserve(self, now: float, within: float = float("inf"), stop: StopFlag = STOP) -> float:
        """Book a slot for one request; return the seconds to wait before sending it.

        `within` is the longest the caller will wait: a pacer that blocks instead of
        booking (tasks/shared_budget.py) gives up after it, or as soon as `stop` is
        requested. This one never blocks.
        """
        with self._lock:
            slots = self._slots
            while slots and slots[0] <= now - self.window:
                slots.popleft()
            slot = now
            if slots:
                slot = max(slot, slots[-1] + self._min_interval)
            if len(slots) >= self.max_per_window:
                # The request max_per_window back must leave the window first.
                slot = max(slot, slots[len(slots) - self.max_per_window] + self.window)
            slots.append(slot)
            return slot - now

    def slow_down(self, interval: float) -> None:
        with self._lock:
            self._min_interval = max(0.0, interval)
            self.slowdowns += 1

    def relax(self, slowdowns_when_sent: int) -> None:
        """Back to the full pace, on a response without NearLimit, unless the pace was slowed
        after its request was sent (`slowdowns` then): listings read at once, an older
        request's answer may arrive after a newer one said the limit is near."""
        with self._lock:
            if self.slowdowns == slowdowns_when_sent:
                self._min_interval = 0.0


_PACERS: dict[tuple[str, str, int], RequestPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(settings: BitbucketSettings) -> RequestPacer:
    """The one pacer of this credential: concurrent workspaces share its budget."""
    key = (settings.api_url, settings.auth.budget_key(), settings.max_requests_per_hour)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = RequestPacer(settings.max_requests_per_hour)
        return pacer
