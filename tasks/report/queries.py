"""Running the report's SQL files (sql/*.sql) against an evidence connection.

Reports only read: every query is a SELECT over the evidence tables and views, so a
read-only connection is enough (a report's temporary tables live in the connection's own
temporary catalog, never in the evidence file)::

    members = frame(conn, "run_members", run_id="r-1")
    with temp_table(conn, "run_members", run_id="r-1") as table:
        conn.execute(f"SELECT count(*) FROM {table}").fetchall()
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

_SQL_DIR = Path(__file__).parent / "sql"
_NAMES = itertools.count()  # temporary tables and views a report makes: unique in the process


def unique_name(prefix: str) -> str:
    return f"_bb2sv_{prefix}_{next(_NAMES)}"


@cache
def sql_text(name: str) -> str:
    return (_SQL_DIR / f"{name}.sql").read_text("utf-8")


def frame(conn: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pd.DataFrame:
    """Result of sql/<name>.sql as a DataFrame; timestamps are converted to UTC."""
    return frame_of(conn, sql_text(name), **params)


def frame_of(conn: duckdb.DuckDBPyConnection, sql: str, **params: Any) -> pd.DataFrame:
    """Like `frame`, for SQL built here rather than read from sql/."""
    result = conn.execute(sql, params).df()
    for column in result.columns:
        if isinstance(result[column].dtype, pd.DatetimeTZDtype):
            result[column] = result[column].dt.tz_convert("UTC")
    return result


@contextmanager
def temp_table(conn: duckdb.DuckDBPyConnection, name: str, **params: Any) -> Iterator[str]:
    """sql/<name>.sql kept in a temporary table for as long as the block runs; yields the
    table's (unique) name. A report reads the population once this way and asks DuckDB for
    counts, a page of rows or a whole CSV from it, instead of copying it into pandas."""
    table = unique_name(name)
    conn.execute(f"CREATE TEMP TABLE {table} AS {sql_text(name)}", params)
    try:
        yield table
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def first_row(conn: duckdb.DuckDBPyConnection, name: str, **params: Any) -> dict | None:
    """The first row of sql/<name>.sql as plain Python values, timestamps in UTC; None if
    there is none. Fetched as it is: a one-row DataFrame took ~5 ms to build and unpack."""
    result = conn.execute(sql_text(name), params)
    row = result.fetchone()
    if row is None:
        return None
    names = [column[0] for column in result.description]
    return {name: _in_utc(value) for name, value in zip(names, row, strict=True)}


def _in_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
