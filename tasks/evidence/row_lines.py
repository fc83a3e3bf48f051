"""The row digests of re-derived observations, from lines assembled out of per-page parts.

observations_sha256 and identity_sha256 hash one JSON array per row (digests/*.sql). Made
in SQL, that was ~0.7 µs a row and two passes over every run: a third of `bb2sv verify`
over a year. But a member's values come from one members page, and a year of daily runs
holds each distinct page body ~30 times; so the JSON of the values a members page gives
(account_id, uuid, nickname, display_name, has_2fa_enabled, two_step_state, account_type,
kind) is made once per body, and a run's lines are spliced from those parts and the JSON
of the few values that come from elsewhere (workspace, observed_at, permission, the
directory columns)::

    found = run_digests(conn, pages, derived, parts)   # (obs, identity) or None

The parts are made as the load makes its lines (`json_lines.json_items`, byte for byte
`to_json`'s). Splicing is exact because a JSON array in DuckDB's `to_json` is `[` + its
elements' JSON joined by `,` + `]` (no spaces), each element written on its own:
`to_json([a, b, c])` is `[` + `to_json([a, b])[1:-1]` + `,` + `to_json([c])[1:-1]` + `]`
(tests/evidence/test_row_lines.py checks it on every kind of text). The parts are lined
up with the rows only after checking that the rows' member columns ARE the pages' member
columns in order (else None: the caller digests the rows in SQL, as before): the result
depends on no assumption about how normalise builds its rows.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tasks.bitbucket.models import RawPage
from tasks.evidence import hashing
from tasks.evidence.json_lines import json_items, json_texts, json_times
from tasks.normalise import IDENTITY_COLUMNS, MEMBER_FIELDS, PageMemo, page_members
from tasks.vocabulary import Listing

# The parts of a line that a members page gives, each a list of columns split where the
# line's other values (workspace, observed_at, permission, directory) come between.
_PARTS = {
    "who": ["account_id", "uuid", "nickname", "display_name"],
    "state": ["has_2fa_enabled", "two_step_state"],
    "identity": ["account_id", "uuid", "account_type", "kind"],
}


@dataclass(frozen=True, slots=True)
class _PageParts:
    columns: pa.Table  # the page's MEMBER_FIELDS, as normalise gives them
    who: pa.Array  # JSON of account_id, uuid, nickname, display_name (no brackets)
    state: pa.Array  # JSON of has_2fa_enabled, two_step_state
    identity: pa.Array  # JSON of account_id, uuid, account_type, kind


class PageParts:
    """The parts of each members page body, by its sha256 (least recently used out), and the
    JSON of each text value seen (workspaces, permissions). Only for pages whose body was
    re-hashed to that sha256 (verify's intact pages). Parts are made for many pages at once
    (`prepare`): a few Arrow operations per column, whatever the number of rows."""

    def __init__(self, memo: PageMemo, capacity: int = 2_048) -> None:
        self.memo = memo
        self.capacity = capacity
        self._items: OrderedDict[str, _PageParts] = OrderedDict()
        self._texts: dict[str | None, str] = {}

    def prepare(self, conn: duckdb.DuckDBPyConnection, pages: list[RawPage]) -> None:
        """Make the parts of those members pages not held yet, all at once."""
        new = {page.sha256: page for page in _members(pages) if page.sha256 not in self._items}
        if not new:
            return
        columns = [self.memo.get(page, "members", page_members).columns for page in new.values()]
        rows = pa.concat_tables(columns)
        made = {name: json_items(conn, rows, names) for name, names in _PARTS.items()}
        start = 0
        for sha, table in zip(new, columns, strict=True):
            end = start + table.num_rows
            self._items[sha] = _PageParts(table, *(made[name][start:end] for name in _PARTS))
            start = end
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, conn: duckdb.DuckDBPyConnection, page: RawPage) -> _PageParts:
        if page.sha256 not in self._items:
            self.prepare(conn, [page])
        self._items.move_to_end(page.sha256)
        return self._items[page.sha256]

    def texts(self, conn: duckdb.DuckDBPyConnection, column: pa.ChunkedArray) -> pa.Array:
        """The JSON of each value of a text column with few distinct values."""
        encoded = column.combine_chunks().dictionary_encode(null_encoding="encode")
        values = encoded.dictionary.to_pylist()
        new = [value for value in values if value not in self._texts]
        if new:
            made = json_texts(conn, pa.array(new, pa.string())).to_pylist()
            self._texts.update(zip(new, made, strict=True))
        return pa.array([self._texts[value] for value in values], pa.string()).take(encoded.indices)


def run_digests(
    conn: duckdb.DuckDBPyConnection,
    pages: list[RawPage],
    derived: pa.Table,
    parts: PageParts,
) -> tuple[str, str] | None:
    """(observations_sha256, identity_sha256) of `derived` (normalise's rows of `pages`, every
    page intact), or None when its rows are not the members pages' rows in order."""
    members = _members(pages)
    observed = json_times(derived["observed_at"])
    if not members or derived.num_rows == 0 or observed is None:
        return None
    found = [parts.get(conn, page) for page in members]
    mine = derived.select(MEMBER_FIELDS)
    columns = pa.concat_tables([part.columns for part in found])
    if columns.num_rows != mine.num_rows or not mine.equals(columns.cast(mine.schema)):
        return None
    who, state, identity = (
        pa.concat_arrays([getattr(part, name) for part in found])
        for name in ("who", "state", "identity")
    )
    workspace = parts.texts(conn, derived["workspace"])
    permission = parts.texts(conn, derived["permission"])
    comma = ","
    # Each line made with its newline: sorted_digest hashes the sorted lines' own buffer.
    observation_lines = pc.binary_join_element_wise(
        "[", workspace, comma, observed, comma, who, comma, permission, comma, state, "]\n", ""
    )
    directory = json_items(conn, derived, IDENTITY_COLUMNS[2:])
    identity_lines = pc.binary_join_element_wise("[", identity, comma, directory, "]\n", "")
    return (
        hashing.sorted_digest(observation_lines, ended=True),
        hashing.sorted_digest(identity_lines, ended=True),
    )


def _members(pages: list[RawPage]) -> list[RawPage]:
    return [page for page in pages if page.listing == Listing.MEMBERS and page.status_code == 200]
