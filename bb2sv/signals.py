"""The command line's own reaction to SIGTERM and SIGINT.

While a collection runs, the flow traps both signals itself (tasks/signals.py) so that the
attempts in flight are stored. Around it (imports, preflight, Prefect's temporary server
starting, printing the result) there is nothing to store, so a signal ends the command at
once, but through an exception rather than the default abrupt death: `atexit` still stops
Prefect's temporary server, which would otherwise outlive the command.

    try:
        with interrupt_on_signals():
            run_the_command()
    except Interrupted as stop:
        stop.name          # 'SIGTERM'
"""

from __future__ import annotations

import signal
from contextlib import AbstractContextManager

from tasks.signals import STOP, signals_handled_by

__all__ = ["Interrupted", "interrupt_on_signals"]


class Interrupted(BaseException):
    """A stop signal arrived where nothing needs storing: end the command (BaseException, so
    no `except Exception` in a library swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


def interrupt_on_signals() -> AbstractContextManager[None]:
    """While the block runs, SIGTERM and SIGINT raise `Interrupted` (main thread only)."""

    def handler(signum: int, _frame: object) -> None:
        STOP.request(signal.Signals(signum).name)  # anything still reading stops too
        raise Interrupted(signum)

    return signals_handled_by(handler)
