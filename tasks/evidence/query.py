"""Read-only SQL over an evidence file, for `bb2sv query` and for auditors.

    frame = run_query("evidence.duckdb", "SELECT * FROM daily_compliance ORDER BY day")

The connection is read-only, so INSERT/UPDATE/DELETE/DDL fail with a clear message.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

import duckdb
import pandas as pd

from tasks.evidence.connection import DEFAULT_LOCK_TIMEOUT_S
from tasks.evidence.errors import EvidenceError
from tasks.evidence.store import EvidenceStore

_READ_ONLY_REFUSAL = re.compile(r"read-only mode|read only mode|attached in read-only", re.I)


def run_query(
    path: str | PathLike[str], sql: str, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> pd.DataFrame:
    """Run one SQL statement read-only and return its rows (empty frame if none)."""
    path = Path(path)
    with EvidenceStore.open(path, read_only=True, lock_timeout_s=lock_timeout_s) as store:
        try:
            relation = store.conn.sql(sql)
            return relation.df() if relation is not None else pd.DataFrame()
        except duckdb.Error as exc:
            raise _query_error(exc, path) from None


def _query_error(exc: duckdb.Error, path: Path) -> EvidenceError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if _READ_ONLY_REFUSAL.search(str(exc)):
        return EvidenceError(
            f"bb2sv query is read-only: the evidence file {path} is append-only and only "
            f"`bb2sv collect` writes to it. Use SELECT (or WITH … SELECT). ({text})"
        )
    return EvidenceError(f"Query failed on {path}: {text}")
