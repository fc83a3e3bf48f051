"""Runs' stored observations, row for row as the member_2sv_observations view gives them.

    identities = StoredIdentities()            # one per reader: the file does not change
    rows = stored_rows(conn, run_ids, identities)

views/02_member_2sv_observations.sql joins each state (member_run_states) to its identity
(member_identities, LEFT JOIN on id). For a year of 10,000-member daily runs, DuckDB's join
was ~1.5 s of verify's CPU; here a chunk's states are read alone and each takes its
identity's columns by id in Arrow, from the identities read once. That is the view's join
while the ids are unique (a state whose identity is gone gets NULLs, as there); when they
are not (an edited file), the rows are read through the view itself, whose join gives such
a state once per identity row.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tasks.evidence.catalog import stored_table
from tasks.normalise import IDENTITY_COLUMNS, OBSERVATION_COLUMNS

COLUMNS = ["run_id", *OBSERVATION_COLUMNS, *IDENTITY_COLUMNS]
_WHO = ["workspace", "account_id", "uuid", "nickname", "display_name", "account_type", "kind"]
_RUNS = "WHERE run_id BETWEEN $lo AND $hi AND run_id IN (SELECT unnest($ids))"


class StoredIdentities:
    """The file's identities by id, read on first use; None when ids repeat."""

    def __init__(self) -> None:
        self._read = False
        self._table: pa.Table | None = None

    def get(self, conn: duckdb.DuckDBPyConnection) -> pa.Table | None:
        if not self._read:
            self._read = True
            table = conn.sql(
                f"SELECT id, {', '.join(_WHO)} FROM {stored_table('member_identities')}"
            ).to_arrow_table()
            ids = table["id"]
            if ids.null_count == 0 and pc.count_distinct(ids).as_py() == len(ids):
                self._table = table
        return self._table


def stored_rows(
    conn: duckdb.DuckDBPyConnection, run_ids: list[str], identities: StoredIdentities
) -> pa.Table:
    """The runs' stored observations (COLUMNS, Arrow). The run_id range first: run ids grow
    with time and rows are stored in run order, so DuckDB skips the row groups outside it."""
    params = {"lo": min(run_ids), "hi": max(run_ids), "ids": run_ids}
    who = identities.get(conn)
    if who is None:
        return conn.sql(
            f"SELECT {', '.join(COLUMNS)} FROM member_2sv_observations {_RUNS}", params=params
        ).to_arrow_table()
    what = [name for name in COLUMNS if name not in _WHO]
    states = conn.sql(
        f"SELECT member_id, {', '.join(what)} FROM {stored_table('member_run_states')} {_RUNS}",
        params=params,
    ).to_arrow_table()
    found = who.take(pc.index_in(states["member_id"], value_set=who["id"]))
    return pa.table({name: (found if name in _WHO else states)[name] for name in COLUMNS})
