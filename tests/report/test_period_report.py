"""Audit-period reports: coverage and gaps, time to fix and SLA, exceptions, CIS counts."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from tasks.evidence.store import EvidenceStore
from tasks.policy import parse_policy
from tasks.report import ReportError, write_period_report

START, END = date(2026, 9, 1), date(2026, 9, 20)
POLICY = parse_policy(
    """\
grace_days: 3
sla_days: 5
exceptions:
  - {account_id: "557058:carol", nickname: carol, workspace: acme, reason: Travelling without phone,
     approved_by: CISO, ticket: SEC-10, expires_on: 2026-09-10}
  - {account_id: "557058:kim", workspace: acme, reason: Contractor offboarding,
     approved_by: CISO, ticket: SEC-11, expires_on: 2027-01-01}
""",
    "policy.yaml",
)
MISSING = {date(2026, 9, 5), date(2026, 9, 12), date(2026, 9, 13)}


def population(day: date, member) -> list:
    """Who is in the workspace on `day`, and with which 2SV state."""
    people = [
        member("alice", True, "owner"),
        member("bob", day >= date(2026, 9, 3)),  # off until 09-03: fixed within SLA
        member("carol", True if day >= date(2026, 9, 11) else None),  # excepted until 09-10
        member("jack", day >= date(2026, 8, 31)),  # fixed before the window: not listed
    ]
    if day >= date(2026, 9, 2):
        people.append(member("henry", day >= date(2026, 9, 15), "owner"))  # breached
    if day >= date(2026, 9, 18):
        people.append(member("ivy", None))  # still open at the end, within SLA
    return people


@pytest.fixture(scope="module")
def conn(tmp_path_factory, build):
    path = tmp_path_factory.mktemp("period") / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        day = date(2026, 8, 30)
        while day <= END + timedelta(days=2):  # runs after the window must not change it
            if day not in MISSING:
                build.record(store, "acme", day, population(day, build.member), policy=POLICY)
            day += timedelta(days=1)
        build.record(store, "acme", date(2026, 9, 12), population(day, build.member),
                     policy=POLICY, status="incomplete")  # fmt: skip
    with EvidenceStore.open(path, read_only=True) as reader:
        yield reader.conn


@pytest.fixture(scope="module")
def bundle(conn, tmp_path_factory):
    return write_period_report(conn, "acme", START, END, tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def doc(bundle) -> dict:
    return json.loads(bundle.files["json"].read_bytes())


def test_coverage_counts_days_and_lists_each_gap(bundle, doc):
    assert doc["schema"] == "bb2sv.period-report/1"
    coverage = doc["coverage"]
    assert coverage["days_in_window"] == 20
    assert coverage["days_with_complete_evidence"] == 17
    assert coverage["incomplete_or_failed_runs"] == 1
    assert coverage["gaps"] == [
        {"from": "2026-09-05", "to": "2026-09-05", "days": 1},
        {"from": "2026-09-12", "to": "2026-09-13", "days": 2},
    ]
    md = bundle.files["md"].read_text()
    assert "**17 of 20 days**" in md and "| 2026-09-12 | 2026-09-13 | 2 |" in md


def test_findings_with_time_to_fix_and_sla(doc):
    rows = [(f["nickname"], f["severity"], f["days_to_fix"], f["sla"], f["sla_breached"])
            for f in doc["findings"]]  # fmt: skip
    assert rows == [
        ("henry", "critical", 13.0, "breached", True),  # owner first; due 09-07, fixed 09-15
        ("bob", "high", 4.0, "met", False),  # seen 08-30 (before the window), fixed 09-03
        ("carol", "medium", 1.0, "met", False),  # exception expired 09-10, fixed 09-11
        ("ivy", "medium", None, "open, within SLA", False),  # due 09-23, after the window
    ]
    assert doc["status"] == "NON-COMPLIANT"
    by_name = {f["nickname"]: f for f in doc["findings"]}
    assert by_name["henry"]["due_at"] == "2026-09-07T06:00:00Z"
    assert by_name["bob"]["first_seen"] == "2026-08-30T06:00:00Z"
    assert by_name["ivy"]["resolved_at"] is None


def test_exceptions_in_force_during_window_including_one_expiring_mid_window(doc, bundle):
    rows = [(e["ticket"], e["first_day_in_force"], e["last_day_in_force"], e["expires_on"])
            for e in doc["exceptions"]]  # fmt: skip
    assert rows == [
        ("SEC-10", "2026-09-01", "2026-09-09", "2026-09-10"),
        ("SEC-11", "2026-09-01", "2026-09-20", "2027-01-01"),
    ]
    md = bundle.files["md"].read_text()
    assert "expired 2026-09-10" in md and "| in force |" in md


def test_cis_counts_at_end_of_window(doc):
    counts = doc["end_counts"]
    assert {k: counts[k] for k in ("accounts", "with_2sv", "without_2sv", "unknown",
                                   "owners_without_2sv", "excepted")} == {
        "accounts": 6, "with_2sv": 5, "without_2sv": 1, "unknown": 1,
        "owners_without_2sv": 0, "excepted": 0,
    }  # fmt: skip
    assert counts["run_day"] == "2026-09-20"


def test_trend_values_and_chart_marks_gaps(doc, bundle):
    daily = {d["day"]: d for d in doc["daily"]}
    assert len(daily) == 20
    # 09-01: alice, jack on; carol excepted; bob off -> 3 of 4
    assert daily["2026-09-01"]["compliance_pct"] == 75.0
    assert daily["2026-09-05"]["compliance_pct"] is None
    html = bundle.files["html"].read_text()
    svg = bundle.files["svg"].read_text()
    assert "<svg" in html and html.count('class="gap"') == 3
    assert svg.count('class="gap"') == 3 and "<script" not in svg
    assert bundle.files["svg"].name in bundle.files["md"].read_text()


def test_manifest_names_every_run_and_the_last_hash(bundle, conn):
    manifest = json.loads(bundle.manifest_path.read_bytes())
    runs = conn.execute(
        "SELECT run_id, run_hash FROM collection_runs WHERE status = 'complete' "
        "AND started_at >= TIMESTAMPTZ '2026-09-01 00:00:00+00' "
        "AND started_at < TIMESTAMPTZ '2026-09-21 00:00:00+00' ORDER BY started_at"
    ).fetchall()
    assert manifest["run_ids"] == [run_id for run_id, _ in runs]
    assert (manifest["run_id"], manifest["run_hash"]) == runs[-1]
    assert bundle.directory.name == "acme" and bundle.directory.parent.name == "2026-09-20"
    assert {f["name"] for f in manifest["files"]} == {p.name for p in bundle.files.values()}
    from tasks.report import _run_suffix

    last_tag = _run_suffix(runs[-1][0])
    assert re.fullmatch(
        rf"audit-2026-09-01_2026-09-20-asof-20260920T\d{{6}}Z-{last_tag}\.manifest\.json",
        bundle.manifest_path.name,
    ), bundle.manifest_path.name


def test_window_fully_covered_without_breaches_is_compliant(conn, tmp_path):
    bundle = write_period_report(conn, "acme", date(2026, 9, 16), date(2026, 9, 20), tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    assert doc["coverage"]["gaps"] == [] and bundle.status == "COMPLIANT"
    assert [f["nickname"] for f in doc["findings"]] == ["ivy"]


def test_bad_window_and_unknown_workspace_are_clear_errors(conn, tmp_path):
    with pytest.raises(ReportError, match="starts after it ends"):
        write_period_report(conn, "acme", END, START, tmp_path)
    with pytest.raises(ReportError, match="no runs for workspace 'acem'.*acme"):
        write_period_report(conn, "acem", START, END, tmp_path)
