"""A run stored after a later one (an attempt spooled while the evidence file was held, and
stored by the next collection) keeps its place in time: the day's compliance, the latest
state and the steps from run to run follow when runs started, not when they were stored."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.evidence.store import EvidenceStore
from tasks.report.period import load_period

DAY = date(2026, 11, 2)


def test_a_run_stored_late_does_not_replace_a_later_one(tmp_path, build):
    member = build.member
    path = tmp_path / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        build.record(store, "acme", date(2026, 11, 1), [member("alice"), member("bob", True)])
        later = build.record(store, "acme", DAY, [member("alice"), member("bob", True)], hour=9)
        # Started at 06:00, stored after the 09:00 run: bob had not turned 2SV on yet.
        early = build.record(store, "acme", DAY, [member("alice"), member("bob", False)], hour=6)
    with EvidenceStore.open(path, read_only=True) as store:
        conn = store.conn
        day = conn.execute(
            "SELECT run_id, compliance_pct FROM daily_compliance WHERE day = ?", [DAY]
        ).fetchone()
        latest = {
            row[0] for row in conn.execute("SELECT run_id FROM latest_member_state").fetchall()
        }
        order = conn.execute(
            "SELECT run_id, next_run_id FROM complete_runs WHERE started_at::DATE = ? "
            "ORDER BY run_no",
            [DAY],
        ).fetchall()
        bob = conn.execute(
            "SELECT resolved_at IS NOT NULL FROM findings WHERE member_key = '557058:bob'"
        ).fetchall()
    assert day == (later, 100.0)
    assert latest == {later}
    assert order == [(early, later), (later, None)]
    assert bob == [(True,)], "bob's 06:00 violation was resolved by the 09:00 run"


def test_a_period_reports_each_members_state_on_their_last_day(tmp_path, build):
    """Bob lost 2SV on the window's last day, and that day's run was stored before the run
    of the day before (spooled, stored late). The report said his basis on his last day was
    Bitbucket 2SV: the run stored last, and a basis left out where it had none."""
    member = build.member
    path = tmp_path / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        build.record(store, "acme", date(2026, 11, 3), [member("alice"), member("bob", False)])
        build.record(store, "acme", DAY, [member("alice"), member("bob", True)])  # stored late
    with EvidenceStore.open(path, read_only=True) as store:
        report = load_period(store.conn, "acme", DAY, date(2026, 11, 3))
    bob = report.members.set_index("nickname").loc["bob"]
    assert str(bob["last_day"])[:10] == "2026-11-03"
    assert pd.isna(bob["basis_last_day"]), "no basis on his last day"
    assert (bob["days_bitbucket_2sv"], bob["days_without_basis"]) == (1, 1)
