"""A year of daily runs of one workspace, then the queries, the reports and verify.

    python benchmarks/year.py 10000 365    → one JSON line of figures

The history's pages are built by the emulator's own world and payload code without HTTP
(`emulator.offline`), so that the figures are bb2sv's, not the emulator's.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import Timer

from emulator.offline import make_extract
from emulator.world import WorkspaceSpec
from tasks.evidence.integrity import verify_chain
from tasks.evidence.store import EvidenceStore
from tasks.heap import freeze_imported_objects
from tasks.policy import DEFAULT_POLICY
from tasks.report import write_daily_report, write_period_report


def main(members: int, days: int) -> dict:
    freeze_imported_objects()  # as the commands do once they have imported (tasks/heap.py)
    end = datetime.now(UTC).date()
    start = end - timedelta(days=days - 1)
    spec = WorkspaceSpec("year", members=members, seed=7)
    load_s = build_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "evidence.duckdb"
        with EvidenceStore.open(db) as store:
            for offset in range(days):
                with Timer() as built:
                    extract = make_extract(spec, day=start + timedelta(days=offset), emulated=True)
                with Timer() as loaded:
                    store.record_run(extract, policy=DEFAULT_POLICY)
                build_s += built.seconds
                load_s += loaded.seconds
        with EvidenceStore.open(db, read_only=True) as store:
            conn = store.conn
            with Timer() as daily_t:
                conn.execute("select * from daily_compliance").fetchall()
            middle = start + timedelta(days=days // 2)
            with Timer() as as_of_t:
                conn.execute("select * from member_state_as_of(?)", [middle]).fetchall()
            with Timer() as findings_t:
                conn.execute("select * from findings").fetchall()
            with Timer() as period_t:
                write_period_report(conn, "year", start, end, Path(tmp) / "reports")
            # The daily run's own report after a year: its findings reach back to each
            # member's first violation, so it reads the history.
            last_run = conn.execute(
                "SELECT run_id FROM collection_runs WHERE status = 'complete' "
                "ORDER BY started_at DESC LIMIT 1"
            ).fetchone()[0]
            with Timer() as daily_report_t:
                write_daily_report(conn, last_run, Path(tmp) / "reports")
            rows = conn.execute("select count(*) from member_2sv_observations").fetchone()[0]
            bodies, patched, responses = conn.execute(
                "select count(*), count(patch), (select count(*) from raw_api_responses) "
                "from raw_page_bodies"
            ).fetchone()
        with Timer() as verify_t:
            result = verify_chain(db)
        assert result.ok, result
        return {
            "runs": days,
            "observation_rows": rows,
            "build_pages_s": build_s,
            "load_s": load_s,
            "daily_compliance_s": daily_t.seconds,
            "as_of_s": as_of_t.seconds,
            "findings_s": findings_t.seconds,
            "period_report_s": period_t.seconds,
            "daily_report_s": daily_report_t.seconds,
            "verify_s": verify_t.seconds,
            # One observation row per member and day: the whole file (raw pages included)
            # per member-day.
            "bytes_per_row": db.stat().st_size / rows,
            "file_bytes": db.stat().st_size,
            "pages": responses,
            "distinct_bodies": bodies,
            "patched_bodies": patched,
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2])), default=str))
