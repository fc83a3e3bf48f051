"""How a page body that is stored whole is kept: zlib-compressed (issue 13, 100,000 members).

A 100,000-member workspace's first run brings about 200 MB of JSON that no earlier run
holds. Given to DuckDB as it is, the run's one transaction held all of it until the commit,
and the commit's checkpoint as much again (a peak of ~800 MiB); compressed on arrival
(level 1: ~0.4 ms a 100 KB page, beside the network wait) they are ~23 MB, and the peak
~430-480 MiB. The evidence file keeps them in `raw_page_bodies.body_zlib` (migration 0008);
`body` holds bodies as they arrived, stored before bb2sv 0.5::

    stored = compress(body)                     # what the store and the spill keep
    if expands_back(stored, len(body)):         # else the store keeps the body as it is
        decompress(stored) == body              # checked by the caller against its SHA-256
    decompress(b"x" * 9)                        # ValueError: not zlib data

Bounded: a row edited into a small blob that expands without end (a "zip bomb") must not
make a reader hold more than a few times the file's own size. A stored body expands to at
most MAX_EXPANDED_BYTES (the largest body the client accepts, `client.MAX_BODY_BYTES`) and
to at most MAX_RATIO times its stored size; the store keeps compressed only bodies within
both (JSON pages compress 9 to 12 times), and any other body as it arrived.
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_EXPANDED_BYTES", "MAX_RATIO", "compress", "decompress", "expands_back"]

LEVEL = 1  # level 6 makes pages ~10 % smaller at three times the CPU
MAX_EXPANDED_BYTES = 8 * 2**20  # = client.MAX_BODY_BYTES (tests/test_page_encoding.py)
MAX_RATIO = 100


def compress(body: bytes) -> bytes:
    return zlib.compress(body, LEVEL)


def expands_back(stored: bytes, size: int) -> bool:
    """Whether `stored`, compressed from a body of `size` bytes, is within what `decompress`
    gives back by default (the store keeps other bodies as they arrived)."""
    return size <= _limit(stored)


def _limit(stored: bytes) -> int:
    return min(MAX_EXPANDED_BYTES, MAX_RATIO * len(stored))


def decompress(stored: bytes, *, limit: int | None = None) -> bytes:
    """The body `stored` (zlib data) gives back; ValueError when it is not whole zlib data,
    or would expand beyond `limit` bytes (default: MAX_EXPANDED_BYTES, and MAX_RATIO times
    the stored size)."""
    limit = _limit(stored) if limit is None else limit
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(stored, limit)
    except zlib.error as exc:
        raise ValueError(f"not zlib data ({exc})") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"expands beyond {limit:,} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ValueError("not one whole zlib stream (cut short, or followed by other bytes)")
    return body
