"""A healthy file that was written and reopened many times is never taken for a damaged one.

Regression: the truncation check once compared the file size with DuckDB's *total* blocks,
which include free blocks that DuckDB cuts off the end of the file, so a good evidence file
was refused as "truncated" after a few runs.
"""

from __future__ import annotations

from datetime import date, timedelta

from tasks.evidence.integrity import verify_chain
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY


def test_many_reopened_writes_stay_readable(db_path, synth):
    # The old check refused the file from the third run on, at any population: what each
    # round costs is opening the file, not its members.
    for day in range(8):
        extract = synth.make_extract(
            f"ws-{day % 4}", synth.synthetic_members(300), day=date(2026, 3, 1) + timedelta(day)
        )
        with EvidenceStore.open(db_path) as store:
            store.record_run(extract, policy=DEFAULT_POLICY)
        with EvidenceStore.open(db_path, read_only=True) as store:
            (runs,) = store.conn.execute("select count(*) from collection_runs").fetchall()[0]
        assert runs == day + 1
    result = verify_chain(db_path)
    assert result.ok and result.runs_checked == 8
