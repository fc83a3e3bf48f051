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
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
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
    rows = frame(conn, name, **params)
    if rows.empty:
        return None
    return {key: _plain(value) for key, value in rows.iloc[0].to_dict().items()}


def _plain(value: Any) -> Any:
    """pandas scalars → plain Python (NaT/NA → None, Timestamp → datetime, list → list)."""
    if isinstance(value, np.ndarray | list):  # a LIST column
        return [_plain(item) for item in value]
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value
