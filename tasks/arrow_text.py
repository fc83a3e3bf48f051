"""The text of an Arrow string array without copying it: its values, one after the other.

    text_of(pa.array(["a\\n", "bc\\n"]))   # memoryview of b"a\\nbc\\n", the array's own buffer

An array of lines that each end with their separator is then a whole text: the load's
sorted digest lines to hash, or the daily report's CSV rows to write. Building it with
`string_agg` or `"".join` would hold the text two or three times over (~35 MB a copy for
the CSV of 100,000 members).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["text_of"]


def text_of(lines: pa.Array) -> memoryview:
    """The bytes of the lines (string or large_string, whose nulls hold no bytes, as
    DuckDB's and pyarrow's own), in order."""
    if not (pa.types.is_string(lines.type) or pa.types.is_large_string(lines.type)):
        raise TypeError(f"text_of reads string arrays, not {lines.type}")
    _validity, offsets, data = lines.buffers()
    if len(lines) == 0 or data is None:  # no value holds a byte
        return memoryview(b"")
    width = np.int32 if pa.types.is_string(lines.type) else np.int64
    bounds = np.frombuffer(offsets, width)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(data)[bounds[0] : bounds[-1]]
