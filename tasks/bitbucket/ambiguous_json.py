"""Pages whose JSON gives a key twice in one object.

JSON readers disagree on such a key: orjson and Python's json keep its last value, DuckDB's
json functions (`json_extract`, `->>`: what SQL over `raw_api_pages` uses) its first. A page
with `{"has_2fa_enabled": false, "has_2fa_enabled": true}` would then read one way in bb2sv's
evidence and another in SQL over the very bytes stored, so extraction refuses it as an
anomaly::

    ambiguous_json(b'{"a": 1, "b": {"c": 2, "c": 3}}')  # "gives the key 'c' twice in one object"
    ambiguous_json(b'{"a": 1}')                          # None
    refuse_ambiguous(body, page=3)                       # raises PaginationAnomaly
"""

from __future__ import annotations

import json

from tasks.bitbucket.exceptions import PaginationAnomaly

__all__ = ["ambiguous_json", "refuse_ambiguous"]


class _GivenTwice(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_keys_given_twice(pairs: list[tuple[str, object]]) -> None:
    if len(pairs) > 1 and len({key for key, _value in pairs}) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _GivenTwice(key)
            seen.add(key)
    # Nothing is built: the page's document is orjson's; this pass only checks its keys.


def ambiguous_json(body: bytes) -> str | None:
    """Why readers could disagree on the JSON page `body` (which orjson parsed), or None.

    Python's json scanner (C) hands each object's pairs to a check: ~0.8 ms for a page of
    100 members, about three times orjson's parse.
    """
    try:
        json.loads(body, object_pairs_hook=_refuse_keys_given_twice)
    except _GivenTwice as found:
        return f"gives the key {found.key[:100]!r} twice in one object"
    except RecursionError:
        return "nests too deep to be checked for keys given twice"
    except ValueError:
        return None  # not JSON to Python's reader: orjson already decided what the page is
    return None


def refuse_ambiguous(body: bytes, *, page: int) -> None:
    """Raise PaginationAnomaly (the run is then incomplete, its pages kept) when readers
    could disagree on page `page`."""
    ambiguous = ambiguous_json(body)
    if ambiguous is not None:
        raise PaginationAnomaly(
            f"page {page} {ambiguous}: JSON readers disagree on which value counts (bb2sv "
            "would take the last, DuckDB's json functions the first)"
        )
