"""Each new evidence file gets its own DuckDB identity, though it starts as a copy.

DuckDB writes 16 random bytes into the main header of every file it creates, its database
identifier, and refuses a write-ahead log that was written for another file: a crashed
writer's `a.duckdb.wal` renamed to `b.duckdb.wal` is not replayed into b. New evidence files
are copies of one empty file (`creation.create`), so each copy is given a new identifier
here and the header's checksum is made again, as DuckDB makes it::

    image = with_new_identifier(empty_evidence_file())   # None: make the file by migrating

The header layout is DuckDB's, not documented. So before the first copy, each process checks
it against the DuckDB it has: two files DuckDB creates must differ only in the checksum and
these 16 bytes, and the checksum must be the one computed here. If not (another DuckDB
version), `with_new_identifier` returns None and new files are made by migrating, as
DuckDB creates them.
"""

from __future__ import annotations

import os
import struct
import tempfile
from functools import cache
from pathlib import Path

from tasks.evidence.connection import connect
from tasks.evidence.errors import EvidenceError

__all__ = ["identifier_of", "with_new_identifier"]

_MAIN_HEADER = 4096  # bytes: the main header's block; the checksum covers the rest of it
_CHECKSUM = range(0, 8)
_IDENTIFIER = range(124, 140)
_WORD = struct.Struct("<Q")
_MULTIPLIER = 0xBF58476D1CE4E5B9
_MASK = 2**64 - 1


def with_new_identifier(image: bytes) -> bytes | None:
    """`image` (a DuckDB file's bytes) with a new random identifier and its main header's
    checksum made again; None when this DuckDB's header is not laid out as checked."""
    if not _layout_as_expected() or not _checksum_holds(image[:_MAIN_HEADER]):
        return None
    head = bytearray(image[:_MAIN_HEADER])
    head[_IDENTIFIER.start : _IDENTIFIER.stop] = os.urandom(len(_IDENTIFIER))
    head[_CHECKSUM.start : _CHECKSUM.stop] = _WORD.pack(_checksum(head[_CHECKSUM.stop :]))
    return bytes(head) + image[_MAIN_HEADER:]


def identifier_of(path: str | os.PathLike) -> str:
    """The DuckDB identifier of the file at `path` (hex), read from its main header without
    opening it (another process may hold it); '' when there is no such file. Spooled
    attempts are sealed for it. The bytes are read as they are, without checking this
    DuckDB's layout (which needs a writable temporary folder): whatever they hold, the main
    header is written once, so one file gives the same answer to every process."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_IDENTIFIER.stop)
    except OSError:
        return ""
    return head[_IDENTIFIER.start : _IDENTIFIER.stop].hex()


def _checksum(block: bytes | bytearray) -> int:
    """DuckDB's checksum of a block whose length is a multiple of 8: 5381, each 64-bit
    little-endian word times a constant XORed into it."""
    result = 5381
    for (word,) in _WORD.iter_unpack(block):
        result ^= (word * _MULTIPLIER) & _MASK
    return result


def _checksum_holds(head: bytes) -> bool:
    checksum = _WORD.unpack_from(head)[0] if len(head) == _MAIN_HEADER else None
    return checksum == _checksum(head[_CHECKSUM.stop :])


@cache
def _layout_as_expected() -> bool:
    """Two files DuckDB creates differ only in the checksum and the identifier (in most of
    its 16 bytes: a random byte may match), and their checksums are ours. A temporary
    folder that cannot be used answers no: new files are then migrated."""
    try:
        with tempfile.TemporaryDirectory(prefix="bb2sv-header-") as folder:
            heads = []
            for name in ("a.duckdb", "b.duckdb"):
                connect(Path(folder, name), read_only=False).close()
                heads.append(Path(folder, name).read_bytes()[:_MAIN_HEADER])
    except (OSError, EvidenceError):
        return False
    first, second = heads
    differ = {index for index, (x, y) in enumerate(zip(first, second, strict=True)) if x != y}
    return (
        len(differ & set(_IDENTIFIER)) >= len(_IDENTIFIER) - 4
        and differ <= set(_CHECKSUM) | set(_IDENTIFIER)
        and all(_checksum_holds(head) for head in heads)
    )
