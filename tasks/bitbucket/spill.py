"""Page bodies kept on disk, not in memory, from their arrival to the store (issue 13).

A 100,000-member workspace brings about 200 MB of JSON. Held in memory, those bodies were
half of the process's size before the store, and they were still held while DuckDB took as
much again to store them. The client hashes each body as it arrives, compresses it as the
store keeps a whole body (`tasks.page_encoding`, ~23 MB for those 200), appends that to an
unnamed temporary file in TMPDIR, and the page keeps only where it is:

    spill = BodySpill()
    held = spill.keep(body, sha256_hex(body))   # a SpilledBody; `body` itself when the file
                                                # cannot be made or written (memory)
    held.read()                                 # the bytes again, checked against the hash
    held.read_compressed()                      # as stored, checked against its own hash

The file has no name (O_TMPFILE, or unlinked at once): nothing is left behind when the
process ends, however it ends. It is not beyond reach: a process of the same user allowed
to read this one's memory can open it through /proc. So every read checks the bytes against
the SHA-256 taken when they arrived, and a body that is not what arrived, or no longer
there whole, raises SpillLost: nothing is derived or stored from it.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
from typing import IO

from tasks import page_encoding
from tasks.canonical import sha256_hex

logger = logging.getLogger("bb2sv.client")

__all__ = ["BodySpill", "SpillLost", "SpilledBody"]


class SpillLost(OSError):
    """A spilled body could not be read back as it arrived (the temporary file was cut or
    changed, or its disk failed)."""


class BodySpill:
    """One temporary file that bodies are appended to, from any thread. `folder`: where to
    make it (default: TMPDIR when set, else `tempfile`'s choice)."""

    def __init__(self, folder: str | None = None) -> None:
        self._folder = folder if folder is not None else os.environ.get("TMPDIR") or None
        self._file: IO[bytes] | None = None
        self._end = 0
        self._lock = threading.Lock()
        self._failed = False

    def keep(self, body: bytes, sha256: str) -> bytes | SpilledBody:
        """Where `body` (whose SHA-256 is `sha256`) is kept: the file, or memory when the
        file cannot take it."""
        if not body or self._failed:
            return body
        # Compressed here, on the listing's own thread during its network wait (zlib lets
        # go of the GIL), so that the store's load has nothing left to compress.
        stored = page_encoding.compress(body)
        stored_sha256 = sha256_hex(stored)
        with self._lock:  # a place of its own for each body; the writes need no lock
            try:
                if self._file is None:
                    # A TMPDIR that is set is used or refused, never silently replaced.
                    self._file = tempfile.TemporaryFile(dir=self._folder)  # noqa: SIM115
            except OSError as exc:
                self._give_up(exc)
                return body
            offset = self._end
            self._end += len(stored)
            fd = self._file.fileno()
        try:
            written = 0
            view = memoryview(stored)
            while written < len(stored):
                written += os.pwrite(fd, view[written:], offset + written)
        except OSError as exc:
            self._give_up(exc)
            return body
        return SpilledBody(self, offset, len(stored), sha256, stored_sha256, len(body))

    def read(self, offset: int, length: int) -> bytes:
        if self._file is None:
            raise SpillLost("no temporary file holds the page bodies of this extract")
        try:
            data = os.pread(self._file.fileno(), length, offset)
        except OSError as exc:  # EIO: the disk failed under it
            raise SpillLost(
                f"the temporary file that held the page bodies could not be read at {offset} "
                f"({exc.strerror or exc}): its disk failed. {_AGAIN}"
            ) from None
        if len(data) != length:
            raise SpillLost(
                f"the temporary file that held the page bodies gave {len(data)} of {length} "
                f"bytes at {offset}: it was cut or its disk failed. {_AGAIN}"
            )
        return data

    def _give_up(self, exc: OSError) -> None:
        if self._failed:
            return
        self._failed = True
        folder = self._folder or tempfile.gettempdir()
        if (folder, exc.errno) in _WARNED:  # once per process: every listing would say it
            return
        _WARNED.add((folder, exc.errno))
        why = _WHY.get(exc.errno or 0, "failed")
        logger.warning(
            "page bodies are kept in memory: the temporary file for them in %s %s (%s). Set "
            "TMPDIR to a folder this process can write, with room for about 2 KB per member.",
            folder,
            why,
            exc.strerror or exc,
        )


_AGAIN = "Collect again to read them anew"
_WARNED: set[tuple[str, int | None]] = set()

_WHY = {
    errno.ENOENT: "cannot be made: the folder does not exist",
    errno.EACCES: "cannot be made: the folder is not writable",
    errno.EROFS: "cannot be made: the folder is read-only",
    errno.ENOSPC: "ran out of room",
    errno.EDQUOT: "ran out of quota",
    errno.EFBIG: "reached the largest file allowed",
    errno.EMFILE: "cannot be opened: the process has too many open files",
}


class SpilledBody:
    """Where one body is in a BodySpill, compressed (`page_encoding`), with the SHA-256 the
    body had when it arrived, that of its compressed bytes, and its size."""

    __slots__ = ("length", "offset", "sha256", "size", "spill", "stored_sha256")

    def __init__(
        self,
        spill: BodySpill,
        offset: int,
        length: int,
        sha256: str,
        stored_sha256: str,
        size: int,
    ) -> None:
        self.spill = spill
        self.offset = offset
        self.length = length
        self.sha256 = sha256
        self.stored_sha256 = stored_sha256
        self.size = size

    def read_compressed(self) -> bytes:
        """The body compressed, as the store keeps it: the bytes made from the body that
        arrived, checked against their own SHA-256 (taken then)."""
        data = self.spill.read(self.offset, self.length)
        if sha256_hex(data) != self.stored_sha256:
            raise self._changed()
        return data

    def read(self) -> bytes:
        try:
            body = page_encoding.decompress(self.read_compressed(), limit=self.size)
        except ValueError:  # cannot be: the bytes are those compress() gave
            raise self._changed() from None
        if sha256_hex(body) != self.sha256:
            raise self._changed()
        return body

    def _changed(self) -> SpillLost:
        return SpillLost(
            f"the temporary file that held the page bodies gave back bytes at {self.offset} "
            "that are not the body that arrived (its SHA-256 differs): the file was "
            f"changed or its disk failed. {_AGAIN}"
        )
