"""Read-only, sandboxed SQL over an evidence file, for `bb2sv query` and for auditors.

    frame = run_query("evidence.duckdb", "SELECT * FROM daily_compliance ORDER BY day")

Exactly one SELECT (or EXPLAIN) statement runs, on a sandboxed connection
(`tasks.evidence.sandbox`): the shipped views and macros over the file's tables, and no
access to any other file. Writes, DDL, COPY, ATTACH, INSTALL/LOAD and SET are refused with a
clear message before anything runs; a SELECT that tries to read a file (read_text,
read_csv, glob) is refused by DuckDB.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import duckdb
import pandas as pd

from tasks.evidence.connection import DEFAULT_LOCK_TIMEOUT_S, translate
from tasks.evidence.errors import EvidenceCorrupt, EvidenceError, QueryError
from tasks.evidence.store import EvidenceStore

__all__ = ["run_query"]

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def run_query(
    path: str | PathLike[str], sql: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> pd.DataFrame:
    """Run one SELECT read-only and return its rows (empty frame if none)."""
    path = Path(path)
    with EvidenceStore.open(path, read_only=True, lock_timeout_s=lock_timeout_s) as store:
        try:
            _require_one_select(store.conn, sql, path)
            relation = store.conn.sql(sql)
            return relation.df() if relation is not None else pd.DataFrame()
        except duckdb.Error as exc:
            raise _query_error(exc, path) from None


def _require_one_select(conn: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    statements = conn.extract_statements(sql)
    if len(statements) != 1:
        raise QueryError(
            f"bb2sv query runs exactly one SQL statement; got {len(statements)}. "
            "Pass a single SELECT (or WITH … SELECT)."
        )
    kind = statements[0].type
    if kind not in _ALLOWED:
        name = str(kind).rsplit(".", 1)[-1]
        name = "INSTALL/LOAD" if name == "LOAD" else name  # DuckDB types INSTALL as LOAD
        raise QueryError(
            f"bb2sv query is read-only and sandboxed: it runs a SELECT, not {name}. The "
            f"evidence file {path} is append-only (only `bb2sv collect` writes to it), and "
            "queries may not write, copy, attach or load anything. Use SELECT (or WITH … "
            "SELECT, or EXPLAIN)."
        )


def _query_error(exc: duckdb.Error, path: Path) -> EvidenceError:
    """The SQL's fault (QueryError), or the file's: DuckDB reads blocks as a query needs
    them, so a damaged one surfaces here, and is the file's error, not the query's."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "file system operations are disabled" in str(exc) or "external" in text.lower():
        return QueryError(
            f"bb2sv query is sandboxed: it reads the evidence file {path} and nothing else "
            f"(no other files, extensions or network). ({text})"
        )
    found = translate(exc, path, action="read")
    if isinstance(found, EvidenceCorrupt) or isinstance(exc, duckdb.IOException):
        return found
    return QueryError(f"Query failed on {path}: {text}")
