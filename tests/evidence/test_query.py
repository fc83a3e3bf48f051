"""run_query: read-only SQL for `bb2sv query`."""

from __future__ import annotations

import pytest

from tasks.evidence.errors import EvidenceCorrupt, EvidenceError, QueryError
from tasks.evidence.query import run_query
from tasks.evidence.store import EvidenceStore


def test_query_returns_a_dataframe(filled):
    frame = run_query(filled, "SELECT workspace, members, disabled FROM daily_compliance")
    assert frame.to_dict("records") == [{"workspace": "acme", "members": 60, "disabled": 6}]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM member_2sv_observations",
        "UPDATE collection_runs SET status = 'failed'",
        "CREATE TABLE notes (x INT)",
        "DROP VIEW findings",
    ],
)
def test_writes_are_refused_clearly(filled, sql):
    with pytest.raises(EvidenceError, match="read-only"):
        run_query(filled, sql)
    assert run_query(filled, "SELECT count(*) AS n FROM member_2sv_observations")["n"][0] == 60


def test_bad_sql_and_missing_file_give_clear_errors(filled, tmp_path):
    with pytest.raises(EvidenceError, match="Query failed.*no_such_table"):
        run_query(filled, "SELECT * FROM no_such_table")
    with pytest.raises(EvidenceError, match="No evidence file"):
        run_query(tmp_path / "missing.duckdb", "SELECT 1")


def test_a_block_damaged_under_a_query_is_the_files_error_not_the_querys(filled, synth, tmp_path):
    """DuckDB reads data blocks as a query needs them, so a damaged one can surface in the
    query, after the file opened fine: that is EvidenceCorrupt (exit 7), not a QueryError
    (exit 2, "fix the SQL")."""
    damaged = synth.copy_file(filled, tmp_path / "damaged.duckdb")
    conn = synth.plain_connect(damaged)
    ((block,),) = conn.execute(
        "SELECT DISTINCT block_id FROM pragma_storage_info('member_run_states') "
        "WHERE column_name = 'two_step_state' AND block_id >= 0"
    ).fetchall()
    (block_size,) = conn.execute("SELECT block_size FROM pragma_database_size()").fetchone()
    conn.close()
    with damaged.open("r+b") as handle:
        handle.seek(3 * 4096 + block * block_size + 64)  # past the block's checksum
        handle.write(b"\x5a" * 256)
    EvidenceStore.open(damaged, read_only=True).close()  # the open does not read that block
    with pytest.raises(EvidenceCorrupt, match="is damaged") as caught:
        run_query(damaged, "SELECT DISTINCT two_step_state FROM member_2sv_observations")
    assert not isinstance(caught.value, QueryError)
