"""Running the report's SQL files (sql/*.sql) against an evidence connection.

Reports only read: every query is a SELECT over the evidence tables and views, so a
read-only connection is enough::

    members = frame(conn, "run_members", run_id="r-1")
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

_SQL_DIR = Path(__file__).parent / "sql"


@cache
def sql_text(name: str) -> str:
    return (_SQL_DIR / f"{name}.sql").read_text("utf-8")


def frame(conn: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pd.DataFrame:
    """Result of sql/<name>.sql as a DataFrame; timestamps are converted to UTC."""
    result = conn.execute(sql_text(name), params).df()
    for column in result.columns:
        if isinstance(result[column].dtype, pd.DatetimeTZDtype):
            result[column] = result[column].dt.tz_convert("UTC")
    return result


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
