"""End to end: the emulator over loopback HTTP → the real client → the evidence store →
reports, checked against the emulator's ground truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from emulator import WorkspaceSpec, run_emulator
from tasks.bitbucket.auth import BearerToken
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY
from tasks.report import violation_changes, write_daily_report, write_period_report
from tasks.report.controls import EMULATOR_NOTICE

FIRST_DAY = date(2026, 11, 20)
DAYS = 4


class DayClock:
    """Wall time pinned to 06:00 UTC of a simulated day (pacing still uses real time)."""

    def __init__(self, day: date) -> None:
        self.moment = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)

    def now(self) -> datetime:
        self.moment += timedelta(milliseconds=1)
        return self.moment

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    path = tmp_path_factory.mktemp("emulated") / "evidence.duckdb"
    truth: dict[str, list[dict]] = {}
    run_ids: list[str] = []
    with (
        run_emulator([WorkspaceSpec("acme", members=230, seed=5)], day=FIRST_DAY) as emu,
        EvidenceStore.open(path) as store,
    ):
        settings = BitbucketSettings(auth=BearerToken(emu.admin_token), api_url=emu.base_url)
        for offset in range(DAYS):
            day = FIRST_DAY + timedelta(days=offset)
            emu.set_day(day)
            extract = extract_workspace(settings, "acme", clock=DayClock(day))
            assert extract.status == "complete", extract.error
            run_ids.append(store.record_run(extract, policy=DEFAULT_POLICY).run_id)
            truth[run_ids[-1]] = emu.expected_members("acme")
    with EvidenceStore.open(path, read_only=True) as reader:
        yield reader.conn, run_ids, truth


def test_daily_counts_match_emulator_ground_truth(history, tmp_path):
    conn, run_ids, truth = history
    for run_id in run_ids:
        bundle = write_daily_report(conn, run_id, tmp_path)
        doc = json.loads(bundle.files["json"].read_bytes())
        expected = truth[run_id]
        states = [m["has_2fa_enabled"] for m in expected]
        assert doc["counts"]["members"] == len(expected)
        assert doc["counts"]["enabled"] == states.count(True)
        assert doc["counts"]["disabled"] == states.count(False)
        assert doc["counts"]["unknown"] == sum(s is None for s in states)
        without = {
            m["account_id"] or m["uuid"] for m in expected if m["has_2fa_enabled"] is not True
        }
        assert {f["member_key"] for f in doc["findings"]} == without
        owners = [
            f["permission"] == "owner" for f in doc["findings"] if f["severity"] == "critical"
        ]
        assert all(owners)
        assert doc["emulated"] is True and doc["notice"] == EMULATOR_NOTICE
        assert EMULATOR_NOTICE in bundle.files["html"].read_text()


def test_changes_follow_ground_truth_between_days(history):
    conn, run_ids, truth = history

    def violators(run_id: str) -> set[str]:
        return {m["account_id"] or m["uuid"] for m in truth[run_id]
                if m["has_2fa_enabled"] is not True}  # fmt: skip

    for before, after in zip(run_ids, run_ids[1:], strict=False):
        opened, resolved = violation_changes(conn, after)
        assert set(opened["member_key"]) == violators(after) - violators(before)
        assert set(resolved["member_key"]) == violators(before) - violators(after)


def test_period_report_over_emulated_history(history, tmp_path):
    conn, run_ids, _truth = history
    end = FIRST_DAY + timedelta(days=DAYS)  # one day past the last run: a gap at the end
    bundle = write_period_report(conn, "acme", FIRST_DAY, end, tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    assert doc["coverage"]["days_with_complete_evidence"] == DAYS
    assert doc["coverage"]["gaps"] == [{"from": end.isoformat(), "to": end.isoformat(), "days": 1}]
    assert doc["runs"][-1]["run_id"] == run_ids[-1] and bundle.status in {
        "INCOMPLETE",
        "NON-COMPLIANT",
    }
    for kind in ("md", "html", "json", "csv", "svg"):
        assert EMULATOR_NOTICE in bundle.files[kind].read_text(), kind
