"""A ceiling on one request in flight: the whole response, not each chunk, and stops.

httpx's read timeout is per chunk: a server that drips one byte a second never trips it,
and a request waiting on a silent server only ends when that timeout runs out. `InFlight`
remembers the sockets its requests use (through httpcore's documented `trace` extension)
and shuts them down when the attempt's deadline passes or a stop is requested; the
blocked read then returns at once and httpx raises, which the client turns into a timeout
(deadline) or a stop.

Usage::

    inflight = InFlight()
    request = http.build_request("GET", url, extensions={"trace": inflight.trace})
    with inflight.watch(seconds=20.0):
        response = http.send(request, stream=True)
        body = b"".join(response.iter_bytes())
    inflight.cut_reason        # None, "deadline" or "stop"

A connection first opened by a request without the trace (e.g. an OAuth token request) is
still covered once its response headers arrive (`response.extensions["network_stream"]`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from tasks.signals import STOP

logger = logging.getLogger("bb2sv.bitbucket")

__all__ = ["CutReason", "InFlight"]

CutReason = Literal["deadline", "stop"]


class InFlight:
    """The sockets of one client's requests, and the means to cut them."""

    def __init__(self) -> None:
        # Weak: httpcore closes and drops connections on its own schedule.
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.cut_reason: CutReason | None = None
        self._watching = 0  # which watch is running (0: none), so a late timer cuts nothing
        self._watches = 0

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore trace hook: note the socket of each new TCP or TLS stream."""
        if event.endswith(".complete"):
            self.adopt(info.get("return_value"))

    def adopt(self, stream: object) -> None:
        """Watch the socket under an httpcore network stream (anything else is ignored)."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        if get_extra_info is None:
            return
        sock = get_extra_info("socket")
        if isinstance(sock, socket.socket):
            self._sockets.add(sock)

    @contextmanager
    def watch(self, seconds: float) -> Iterator[None]:
        """Cut the connection if the block outlives `seconds` or a stop is requested."""
        self.cut_reason = None
        self._watches += 1
        self._watching = this = self._watches
        alarm = ALARMS.call_at(time.monotonic() + seconds, lambda: self._expire(this))
        try:
            with STOP.hook(lambda: self.cut("stop")):
                yield
        finally:
            self._watching = 0
            ALARMS.cancel(alarm)

    def _expire(self, watch: int) -> None:
        # No lock: `cut` also runs inside signal handlers. A timer that fires as its watch
        # ends at worst cuts an idle keep-alive connection, which the next attempt survives.
        if self._watching == watch:
            self.cut("deadline")

    def cut(self, reason: CutReason) -> None:
        """Shut the watched sockets down: a blocked read or connect returns at once."""
        if self.cut_reason is None:
            self.cut_reason = reason
        for sock in list(self._sockets):
            # shutdown, not close: close does not wake a thread blocked in recv. OSError:
            # already closed, or never connected.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Alarms:
    """One daemon thread that calls each callback when its time comes, unless cancelled.

    Every request's deadline is an alarm here: a `threading.Timer` per request started a
    thread each time (~0.5 ms, paid between one page and the next).
    """

    def __init__(self) -> None:
        self._due = threading.Condition()
        self._alarms: list[tuple[float, int, Callable[[], None]]] = []  # a heap by time
        self._cancelled: set[int] = set()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, callback: Callable[[], None]) -> int:
        """Call `callback` at `when` (time.monotonic()); the alarm's id, for `cancel`."""
        with self._due:
            alarm = next(self._ids)
            heapq.heappush(self._alarms, (when, alarm, callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="bb2sv-alarms", daemon=True)
                self._thread.start()
            self._due.notify()
        return alarm

    def cancel(self, alarm: int) -> None:
        with self._due:
            self._cancelled.add(alarm)
            self._drop_cancelled()

    def _drop_cancelled(self) -> None:
        # Only from the front of the heap: the rest are dropped as they come up.
        while self._alarms and self._alarms[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._alarms)[1])

    def _run(self) -> None:
        while True:
            with self._due:
                self._drop_cancelled()
                if not self._alarms:
                    self._due.wait()
                    continue
                wait = self._alarms[0][0] - time.monotonic()
                if wait > 0:
                    self._due.wait(wait)
                    continue
                _when, _alarm, callback = heapq.heappop(self._alarms)
            try:  # outside the lock: a callback may take its time (a socket shutdown)
                callback()
            except Exception:  # one failed callback must not end every later deadline
                logger.exception("a request deadline's callback failed")

    def _forget_thread(self) -> None:
        # A forked child has none of its parent's threads: start one when needed.
        self._thread = None
        self._due = threading.Condition()


ALARMS = Alarms()
os.register_at_fork(after_in_child=ALARMS._forget_thread)
