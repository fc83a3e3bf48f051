"""How a page body that is stored whole is kept: zlib-compressed (issue 13, 100,000 members).

A 100,000-member workspace's first run brings about 200 MB of JSON that no earlier run
holds. Given to DuckDB as it is, the run's one transaction held all of it until the commit,
and the commit's checkpoint as much again (a peak of ~800 MiB); compressed on arrival
(level 1: ~0.4 ms a 100 KB page, beside the network wait) they are ~23 MB, and the peak
~470 MiB. The evidence file keeps them in `raw_page_bodies.body_zlib` (migration 0008);
`body` holds bodies as they arrived, stored before bb2sv 0.5::

    stored = compress(body)                     # what the store and the spill keep
    decompress(stored) == body                  # checked by the caller against its SHA-256
    decompress(b"x" * 9)                        # ValueError: not zlib data

Bounded: a row edited into a small blob that expands without end (a "zip bomb") stops at
MAX_EXPANDED_BYTES, the largest body the client accepts (`client.MAX_BODY_BYTES`): no body
stored is larger. Readers expand one body at a time and drop those that do not hash to
their name, so many such rows cost time, not memory.
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_EXPANDED_BYTES", "compress", "decompress"]

LEVEL = 1  # level 6 makes pages ~10 % smaller at three times the CPU
MAX_EXPANDED_BYTES = 8 * 2**20  # = client.MAX_BODY_BYTES (tests/test_page_encoding.py)


def compress(body: bytes) -> bytes:
    return zlib.compress(body, LEVEL)


def decompress(stored: bytes, *, limit: int = MAX_EXPANDED_BYTES) -> bytes:
    """The body `stored` (zlib data) gives back; ValueError when it is not whole zlib data,
    or would expand beyond `limit` bytes."""
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
