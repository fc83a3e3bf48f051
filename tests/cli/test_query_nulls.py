"""`bb2sv query` shows SQL NULL as an empty cell in its table, never nan, NaT or <NA>."""

from __future__ import annotations

from datetime import date

from typer.testing import CliRunner

from bb2sv.cli import app
from emulator.offline import make_extract, synthetic_members
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY


def test_nulls_print_as_empty_cells(tmp_path):
    db = tmp_path / "e.duckdb"
    with EvidenceStore.open(db) as store:
        store.record_run(
            make_extract("acme", synthetic_members(3), day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
    sql = (
        "select 'row' as label, null::varchar as text_null, null::double as number_null, "
        "null::timestamptz as time_null, null::boolean as bool_null, count(*) as runs "
        "from collection_runs"
    )
    result = CliRunner().invoke(app, ["query", sql, "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "row" in result.stdout and "1" in result.stdout
    for shown in ("nan", "NaT", "<NA>", "None"):
        assert shown not in result.stdout
