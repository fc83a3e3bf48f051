"""Byte-exact patches of one page body against another (its base), for storing page bodies
that barely change from day to day.

A patch is a list of operations applied in order: copy `length` bytes of the base from
`offset`, or insert literal bytes. `apply_patch(base, make_patch(base, body)) == body` for
any two byte strings (`make_patch` checks it, and returns None when a patch would not be
much smaller than the body)::

    ops = make_patch(yesterday_body, today_body)     # [(0, 51200, None), (None, None, b"false"), …]
    assert apply_patch(yesterday_body, ops) == today_body

The same operations are applied in SQL by the `raw_api_pages` view
(views/01_raw_api_pages.sql), so SQL gets the bodies back too (a base stored compressed is
expanded first: page_bodies.expanded_page_body).

Matching is by JSON array element (`},{` boundaries): an unchanged member is one copy,
wherever it moved; a changed one is a copy of its common prefix and suffix around the
literal bytes that differ. Pure Python: one slice comparison per unchanged element, a
binary search of slice comparisons for a changed one's prefix and suffix.
"""

from __future__ import annotations

from typing import NamedTuple

# Boundary between two JSON objects of an array: every Bitbucket and Admin API listing is
# one. Any other body still patches (as one element: common prefix and suffix).
_BOUNDARY = b"},{"
# A patch is stored only when it is this much smaller than the body: otherwise the body is
# stored whole, which also starts a new base for the pages after it.
MAX_PATCH_SHARE = 0.25
MAX_OPS = 2_000


class Op(NamedTuple):
    """Copy base[offset:offset + length], or insert `data` (then offset and length are None)."""

    offset: int | None
    length: int | None
    data: bytes | None


def apply_patch(base: bytes, ops: list[Op] | list[dict]) -> bytes:
    """The body that `ops` make from `base` (ops as Ops or as stored structs)."""
    parts = []
    for op in ops:
        offset, length, data = (
            (op["offset"], op["length"], op["data"]) if isinstance(op, dict) else op
        )
        if data is not None:
            parts.append(data)
        else:
            if offset < 0 or length < 0 or offset + length > len(base):
                raise ValueError(f"patch copies bytes {offset}+{length} of a {len(base)}-byte base")
            parts.append(base[offset : offset + length])
    return b"".join(parts)


def make_patch(base: bytes, body: bytes) -> list[Op] | None:
    """Operations that make `body` from `base`, or None when storing the body whole is about
    as small (the patch would carry more than MAX_PATCH_SHARE of it as literal bytes)."""
    if not body or not base:
        return None
    ops = _Ops()
    index = _element_index(base)
    position = 0  # where in `base` the previous copy ended
    for element in _elements(body):
        # The usual case: this element follows the previous one in the base as well.
        if base.startswith(element, position):
            ops.copy(position, len(element))
            position += len(element)
            continue
        found = index.get(element)
        if found is not None:
            ops.copy(found, len(element))
            position = found + len(element)
            continue
        # A changed element: its common prefix and suffix with the base's element here.
        there = _element_at(base, position)
        head = _common_prefix(element, there)
        tail = _common_suffix(element[head:], there[head:])
        ops.copy(position, head)
        ops.insert(element[head : len(element) - tail])
        end = position + len(there)
        ops.copy(end - tail, tail)
        position = end
        if ops.literal > MAX_PATCH_SHARE * len(body) or len(ops.ops) > MAX_OPS:
            return None
    if ops.literal > MAX_PATCH_SHARE * len(body) or len(ops.ops) > MAX_OPS:
        return None
    if apply_patch(base, ops.ops) != body:  # never store what would not come back exact
        return None
    return ops.ops


class _Ops:
    """Operations, adjacent copies and inserts merged."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.literal = 0

    def copy(self, offset: int, length: int) -> None:
        if length <= 0:
            return
        last = self.ops[-1] if self.ops else None
        if last is not None and last.data is None and last.offset + last.length == offset:
            self.ops[-1] = Op(last.offset, last.length + length, None)
        else:
            self.ops.append(Op(offset, length, None))

    def insert(self, data: bytes) -> None:
        if not data:
            return
        self.literal += len(data)
        last = self.ops[-1] if self.ops else None
        if last is not None and last.data is not None:
            self.ops[-1] = Op(None, None, last.data + data)
        else:
            self.ops.append(Op(None, None, data))


def _elements(body: bytes) -> list[bytes]:
    """`body` cut after the `},` of each `},{` boundary: joined, they are `body` again."""
    out = []
    start = 0
    while (found := body.find(_BOUNDARY, start)) >= 0:
        out.append(body[start : found + 2])
        start = found + 2
    out.append(body[start:])
    return out


def _element_index(base: bytes) -> dict[bytes, int]:
    """Each element of `base` → its first offset."""
    index: dict[bytes, int] = {}
    offset = 0
    for element in _elements(base):
        index.setdefault(element, offset)
        offset += len(element)
    return index


def _element_at(base: bytes, position: int) -> bytes:
    found = base.find(_BOUNDARY, position)
    return base[position:] if found < 0 else base[position : found + 2]


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by halving (each comparison is one memcmp)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(a: bytes, b: bytes) -> int:
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low
