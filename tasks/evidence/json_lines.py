"""A run's digest lines made with Arrow, byte for byte as digests/*.sql makes them.

observations_sha256 and identity_sha256 hash one JSON array of texts per observation
(digests/observations_sha256.sql and identity_sha256.sql are the definition). DuckDB's
`to_json` over a 100,000-member run took ~0.2 s of the load's digests; the same lines are
made here in a few Arrow operations over whole columns::

    lines = observation_lines(conn, table)   # pa.Array, or None: digest the rows in SQL
    lines = identity_lines(conn, table)

Exact because `to_json` writes a text between quotes as it is unless the text holds one of
34 characters (U+0000 to U+001F, `"` and `\\`), which it escapes: such a text (rare) is
written by DuckDB itself, on `conn`. A list is `[` + its elements' JSON joined by `,` + `]`,
and null is `null` (as row_lines.py relies on). tests/evidence/test_json_lines.py checks
the lines against the SQL on every kind of text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.normalise import IDENTITY_COLUMNS, OBSERVATION_COLUMNS

# What to_json escapes in a text (checked on every code point by the tests).
_ESCAPED = r'[\x00-\x1f"\\]'
_TEXT_SQL = "SELECT to_json([value]::VARCHAR[])::VARCHAR FROM _bb2sv_json_texts"
# Microseconds since 1970 of 1000-01-01 and 10000-01-01 (UTC): the years json_times writes.
_YEARS = (
    (datetime(1000, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
    // timedelta(microseconds=1),
    (datetime(9999, 12, 31, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=1))
    // timedelta(microseconds=1),
)


@dataclass(frozen=True, slots=True)
class _Element:
    """One element of every line: `values` as they are (`quoted`: a text to put between
    quotes, for a column with no null and nothing to escape: most of them), their JSON, or
    the one JSON text of them all (a column of nulls)."""

    values: pa.Array | str
    quoted: bool = False


def json_texts(conn: duckdb.DuckDBPyConnection, column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each value of a text column as the JSON `to_json` writes for it in a list of texts
    (`"text"`, escaped where needed; `null`)."""
    return _array_lines([_text_element(conn, column)], len(column), around=("", ""))


def _text_element(conn: duckdb.DuckDBPyConnection, column: pa.Array | pa.ChunkedArray) -> _Element:
    column = _one_array(column).cast(pa.string())
    if len(column) and column.null_count == len(column):
        return _Element("null")
    if not _may_escape(column):
        if column.null_count == 0:
            return _Element(column, quoted=True)
        return _Element(pc.binary_join_element_wise('"', column, '"', "").fill_null("null"))
    quoted = pc.binary_join_element_wise('"', column, '"', "")
    escaped = pc.match_substring_regex(column, _ESCAPED).fill_null(False)
    if pc.any(escaped).as_py():
        conn.register("_bb2sv_json_texts", pa.table({"value": column.filter(escaped)}))
        try:
            made = conn.sql(_TEXT_SQL).to_arrow_table().column(0)
        finally:
            conn.unregister("_bb2sv_json_texts")
        quoted = pc.replace_with_mask(quoted, escaped, _inner(made).combine_chunks())
    return _Element(quoted.fill_null("null"))


def _may_escape(column: pa.Array) -> bool:
    """Whether any byte of the column's text buffer is one to_json escapes (the buffer may
    hold bytes outside the column's values: then the values are looked at one by one)."""
    data = column.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, np.uint8)
    return bool(((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any())


def json_flags(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A boolean column as the JSON of its text (`CAST(b AS VARCHAR)`): `"true"`, `"false"`,
    `null`."""
    return pc.if_else(_one_array(column), '"true"', '"false"').fill_null("null")


def json_times(column: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """The JSON of each observed_at as the digest SQL writes it (strftime
    '%Y-%m-%dT%H:%M:%S.%fZ' in UTC), made in Python once per distinct value (a run has one
    per members page); None for a null or a year outside 1000-9999, where the two might
    not write the same digits."""
    kind = column.type
    if kind.tz is None or kind.unit not in ("s", "ms", "us"):  # never the case: left to SQL
        return None
    encoded = _one_array(column).dictionary_encode(null_encoding="encode")
    micros = encoded.dictionary.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    if micros.null_count:
        return None
    if (
        len(micros)
        and not _YEARS[0] <= pc.min(micros).as_py() <= pc.max(micros).as_py() < _YEARS[1]
    ):
        return None
    values = encoded.dictionary.to_pylist()
    texts = [f'"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"' for value in values]
    return pa.array(texts, pa.string()).take(encoded.indices)


def observation_lines(
    conn: duckdb.DuckDBPyConnection, rows: pa.Table, *, ending: str = ""
) -> pa.Array | None:
    """digests/observations_sha256.sql's `line` of each row of `rows` (the observations'
    columns), each followed by `ending`, or None where only the SQL says what it is."""
    return _lines(conn, rows, OBSERVATION_COLUMNS, ("[", "]" + ending))


def identity_lines(
    conn: duckdb.DuckDBPyConnection, rows: pa.Table, *, ending: str = ""
) -> pa.Array | None:
    """digests/identity_sha256.sql's `line` of each row of `rows`, each followed by
    `ending` (never None: these lines hold no timestamp)."""
    return _lines(conn, rows, ["account_id", "uuid", *IDENTITY_COLUMNS], ("[", "]" + ending))


def json_items(conn: duckdb.DuckDBPyConnection, rows: pa.Table, columns: list[str]) -> pa.Array:
    """The elements' JSON of each row's list of `columns` as text, without its brackets:
    a part of a digest line (`row_lines`) for columns of text and booleans."""
    items = _lines(conn, rows, columns, ("", ""))
    if items is None:
        raise ValueError(f"json_items of a timestamp column ({columns}): use json_times")
    return items


def _lines(
    conn: duckdb.DuckDBPyConnection, rows: pa.Table, columns: list[str], around: tuple[str, str]
) -> pa.Array | None:
    """The JSON array of the text of `columns` (in that order, as the digest SQL lists them)
    of each row, between `around`; None when a timestamp cannot be written here."""
    elements = []
    for name in columns:
        column = rows[name]
        if pa.types.is_timestamp(column.type):
            times = json_times(column)
            if times is None:
                return None
            elements.append(_Element(times))
        elif pa.types.is_boolean(column.type):
            elements.append(_Element(json_flags(column)))
        else:
            elements.append(_text_element(conn, column))
    return _array_lines(elements, rows.num_rows, around)


def _array_lines(elements: list[_Element], rows: int, around: tuple[str, str]) -> pa.Array:
    """`[` + the elements' JSON joined by `,` + `]`, row by row (the quotes of a quoted
    element, and a constant element, go into the text between the columns)."""
    pieces: list = []
    literal = around[0]
    for element in elements:
        if isinstance(element.values, str):
            literal += element.values + ","
        elif element.quoted:
            pieces += [literal + '"', element.values]
            literal = '",'
        else:
            pieces += [literal, element.values]
            literal = ","
    last = literal[:-1] + around[1]
    if not pieces:  # every element the same on every row
        return pa.array([last] * rows, pa.string())
    return pc.binary_join_element_wise(*pieces, last, "")


def _one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _inner(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """JSON arrays without their brackets: the elements, joined by commas."""
    return pc.utf8_slice_codeunits(column, 1, -1)
