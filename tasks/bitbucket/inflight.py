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
import socket
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from tasks.signals import STOP

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
        timer = threading.Timer(seconds, self._expire, args=(this,))
        timer.daemon = True
        timer.start()
        try:
            with STOP.hook(lambda: self.cut("stop")):
                yield
        finally:
            self._watching = 0
            timer.cancel()

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
