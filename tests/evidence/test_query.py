"""run_query: read-only SQL for `bb2sv query`."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.evidence.errors import EvidenceError
from tasks.evidence.query import run_query
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY


@pytest.fixture(scope="module")
def filled(tmp_path_factory, synth):
    """One run of 60 members, shared: every query here is read-only (or refused)."""
    db_path = tmp_path_factory.mktemp("query") / "evidence.duckdb"
    with EvidenceStore.open(db_path) as store:
        extract = synth.make_extract("acme", synth.synthetic_members(60), day=date(2026, 3, 1))
        store.record_run(extract, policy=DEFAULT_POLICY)
    return db_path


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
