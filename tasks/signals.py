"""Stopping a collection cleanly: SIGTERM, SIGINT, Prefect cancellation and time limits.

Prefect workers, Kubernetes and systemd all stop a process with SIGTERM (a Prefect
cancellation is a SIGTERM from the worker too). The default reaction, dying at once, would
throw away every page read so far; Prefect's own reaction, an exception raised wherever the
main thread happens to be, could land inside the evidence store's transaction. Instead, a
stop is a process-wide flag that every wait in the collection watches:

    with stop_on_signals():           # main thread only; the previous handlers come back after
        ...                           # SIGTERM / SIGINT now set STOP instead of killing

    STOP.requested, STOP.reason       # True, 'SIGTERM'
    STOP.wait(5.0)                    # sleeps up to 5 s; returns True at once when stopped
    with STOP.hook(cut_connection):   # called (from the signal handler) if a stop arrives
        send_request()

The Bitbucket client checks STOP before each attempt, sleeps on it and cuts the connection
in flight (tasks/bitbucket/inflight.py); the collection flow stores what was read as a
`failed` run naming the signal, starts nothing new, and ends. A time limit is a stop too:
`stop_after(seconds, reason)`.

Work that must also stop on its own (the other listings of a workspace, once one of them has
failed) uses a scoped flag: `with stop_scope() as halt:` gives a `StopFlag` that a process-wide
stop requests too, and that `halt.request(...)` requests for that work alone.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count

__all__ = [
    "STOP",
    "StopFlag",
    "signals_handled_by",
    "stop_after",
    "stop_on_signals",
    "stop_scope",
]

logger = logging.getLogger("bb2sv.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopFlag:
    """A stop request with its reason, and hooks run the moment it is requested.

    Hooks and the flag are read and written without locks on purpose: `request` runs inside
    a signal handler, on the main thread, possibly while that thread is in `hook` itself, so
    a lock there could deadlock. Single dict operations are atomic in CPython.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason: str | None = None
        self._hooks: dict[int, Callable[[], None]] = {}
        self._ids = count()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        """What asked for the stop, e.g. 'SIGTERM' or "the flow's 3600 s time limit"."""
        return self._reason

    def request(self, reason: str) -> None:
        """Ask everything to stop; the first reason wins. Safe inside a signal handler."""
        if self._event.is_set():
            return
        self._reason = reason
        self._event.set()
        for hook in list(self._hooks.values()):
            try:
                hook()
            except Exception:  # a hook must never keep the others (or the handler) from running
                logger.exception("a stop hook failed")

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is requested (then at once)."""
        if seconds <= 0:
            return self._event.is_set()
        return self._event.wait(seconds)

    @contextmanager
    def hook(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run `callback` if a stop is requested while the block runs (or already was)."""
        key = next(self._ids)
        self._hooks[key] = callback
        try:
            if self._event.is_set():
                callback()
            yield
        finally:
            self._hooks.pop(key, None)

    def clear(self) -> None:
        """Forget a stop: a new collection in this process starts afresh."""
        self._event.clear()
        self._reason = None


STOP = StopFlag()


@contextmanager
def stop_scope(parent: StopFlag = STOP) -> Iterator[StopFlag]:
    """A flag of its own for one piece of work: requesting it stops that work only, and a stop
    of `parent` (requested before or while the block runs) requests it with the same reason."""
    scope = StopFlag()
    with parent.hook(lambda: scope.request(parent.reason or "a stop")):
        yield scope


@contextmanager
def signals_handled_by(handler: Callable[[int, object], None]) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT go to `handler`; the previous handlers come
    back after. Only the main thread may install handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stop_on_signals(flag: StopFlag = STOP) -> contextlib.AbstractContextManager[None]:
    """While the block runs, SIGTERM and SIGINT set `flag` instead of ending the process."""

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if flag.requested:
            logger.warning("%s received while stopping (%s); still stopping", name, flag.reason)
            return
        logger.warning("%s received: stopping; what was read so far is being stored", name)
        flag.request(name)

    return signals_handled_by(handler)


@contextmanager
def stop_after(seconds: float | None, reason: str, flag: StopFlag = STOP) -> Iterator[None]:
    """Request a stop with `reason` if the block is still running after `seconds` (None: never)."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, flag.request, args=(reason,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
