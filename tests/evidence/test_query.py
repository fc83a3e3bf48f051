"""run_query: read-only SQL for `bb2sv query`."""

from __future__ import annotations

import pytest

from tasks.evidence.errors import EvidenceError
from tasks.evidence.query import run_query


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
