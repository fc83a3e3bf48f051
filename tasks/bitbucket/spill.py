"""Page bodies kept on disk, not in memory, from their arrival to the store (issue 13).

A 100,000-member workspace brings about 200 MB of JSON. Held in memory, those bodies were
half of the process's size before the store, and they were still held while DuckDB took as
much again to store them. The client appends each body to an unnamed temporary file (in
TMPDIR, `tempfile`'s folder) as it arrives, and the page keeps only where it is:

    spill = BodySpill()
    held = spill.keep(body)     # a SpilledBody (offset, length); `body` itself when the
                                # file cannot be made or written (memory, as before)
    held.read()                 # the bytes again, from the file (the page cache)

The file has no name (O_TMPFILE, or unlinked at once): nothing is left behind when the
process ends, however it ends, and only this process can open it. A body read back is the
length it was written; the store checks each stored body against the SHA-256 taken when it
arrived, as it checks a spooled page.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from typing import IO

logger = logging.getLogger("bb2sv.client")

__all__ = ["BodySpill", "SpillLost", "SpilledBody"]


class SpillLost(OSError):
    """A spilled body could not be read back whole (the temporary file was cut or lost)."""


class BodySpill:
    """One temporary file that bodies are appended to, from any thread."""

    def __init__(self, folder: str | None = None) -> None:
        self._folder = folder
        self._file: IO[bytes] | None = None
        self._end = 0
        self._lock = threading.Lock()
        self._failed = False

    def keep(self, body: bytes) -> bytes | SpilledBody:
        """Where `body` is kept: the file, or memory when the file cannot take it."""
        if not body or self._failed:
            return body
        with self._lock:  # a place of its own for each body; the writes need no lock
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115
            except OSError as exc:
                self._give_up(exc)
                return body
            offset = self._end
            self._end += len(body)
            fd = self._file.fileno()
        try:
            written = 0
            view = memoryview(body)
            while written < len(body):
                written += os.pwrite(fd, view[written:], offset + written)
        except OSError as exc:
            self._give_up(exc)
            return body
        return SpilledBody(self, offset, len(body))

    def read(self, offset: int, length: int) -> bytes:
        if self._file is None:
            raise SpillLost("no temporary file holds the page bodies of this extract")
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:
            raise SpillLost(
                f"the temporary file that held this extract's page bodies gave {len(data)} of "
                f"{length} bytes at {offset}: it was cut or its disk failed. Nothing of this "
                "attempt can be stored; run the collection again."
            )
        return data

    def _give_up(self, exc: OSError) -> None:
        if self._failed:
            return
        self._failed = True
        logger.warning(
            "page bodies are kept in memory: the temporary file for them (in %s) failed: %s. "
            "Set TMPDIR to a folder with room.",
            self._folder or tempfile.gettempdir(),
            exc.strerror or exc,
        )


class SpilledBody:
    """Where one body is in a BodySpill."""

    __slots__ = ("length", "offset", "spill")

    def __init__(self, spill: BodySpill, offset: int, length: int) -> None:
        self.spill = spill
        self.offset = offset
        self.length = length

    def read(self) -> bytes:
        return self.spill.read(self.offset, self.length)
