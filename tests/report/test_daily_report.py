"""Daily reports from real evidence files: the numbers, not just the presence of sections."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from tasks.evidence.store import EvidenceStore
from tasks.policy import parse_policy
from tasks.report import violation_changes, write_daily_report
from tasks.report.controls import EMULATOR_NOTICE
from tasks.version import __version__

POLICY = parse_policy(
    """\
grace_days: 3
sla_days: 5
exceptions:
  - {account_id: "557058:carol", nickname: carol, workspace: acme,
     reason: "Lost phone, replacement ordered",
     approved_by: CISO, ticket: SEC-7, expires_on: 2026-11-12}
  - {account_id: "557058:frank", workspace: acme, reason: Leaves the company,
     approved_by: CISO, ticket: SEC-8, expires_on: 2026-11-30}
  - {account_id: "557058:carol", nickname: carol, workspace: other-workspace,
     reason: Not this workspace,
     approved_by: CISO, ticket: SEC-9, expires_on: 2027-01-01}
""",
    "policy.yaml",
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, build):
    """acme: 11-01, 11-02 (bob off), 11-03 (bob fixed, gina joins), 11-10, and an incomplete run."""
    member, record = build.member, build.record
    ALICE = member("alice", True, "owner")
    BOB_OFF, BOB_ON = member("bob", False), member("bob", True)
    CAROL = member("carol", None)
    DAVE = member("dave", False, "owner")
    EVE = member("eve", True)
    GINA = member("gina", False)
    path = tmp_path_factory.mktemp("daily") / "evidence.duckdb"
    first = [ALICE, BOB_OFF, CAROL, DAVE, EVE]
    later = [ALICE, BOB_ON, CAROL, DAVE, EVE, GINA]
    with EvidenceStore.open(path) as store:
        ids = {
            "d1": record(store, "acme", date(2026, 11, 1), first, policy=POLICY),
            "d2": record(store, "acme", date(2026, 11, 2), first, policy=POLICY),
            "d3": record(store, "acme", date(2026, 11, 3), later, policy=POLICY),
            "d10": record(store, "acme", date(2026, 11, 10), later, policy=POLICY),
            "partial": record(
                store, "acme", date(2026, 11, 10), later, policy=POLICY, hour=9,
                status="incomplete",
            ),
            "emu": record(store, "emu", date(2026, 11, 3), later, emulated=True),
        }  # fmt: skip
    with EvidenceStore.open(path, read_only=True) as reader:
        yield reader.conn, ids


def read_json(bundle) -> dict:
    return json.loads(bundle.files["json"].read_bytes())


def test_counts_compliance_and_findings_in_order(runs, tmp_path):
    conn, ids = runs
    bundle = write_daily_report(conn, ids["d3"], tmp_path)
    doc = read_json(bundle)
    assert bundle.status == doc["status"] == "NON-COMPLIANT"
    assert doc["counts"] == {
        "members": 6, "enabled": 3, "disabled": 2, "unknown": 1, "excepted": 1,
        "in_grace": 2, "violations": 2,
    }  # fmt: skip
    assert doc["compliance_pct"] == pytest.approx(4 * 100 / 6, abs=1e-3)
    # Owners first. Everyone first observed on 11-01 had grace until 11-04; gina joined 11-03,
    # so her due date is the later of grace end (11-06) and first_seen + SLA (11-08).
    findings = [(f["nickname"], f["severity"], f["days_open"], f["due_at"], f["in_grace"])
                for f in doc["findings"]]  # fmt: skip
    assert findings == [
        ("dave", "critical", 2, "2026-11-06T06:00:00Z", True),
        ("gina", "high", 0, "2026-11-08T06:00:00Z", True),
    ]
    md = bundle.files["md"].read_text()
    assert "compliance 66.6%" in md  # rounded down, never up
    assert "| critical | owner | dave |" in md


def test_new_and_resolved_since_previous_complete_run(runs, tmp_path):
    conn, ids = runs
    doc = read_json(write_daily_report(conn, ids["d3"], tmp_path))
    assert doc["previous_complete_run"]["run_id"] == ids["d2"]
    assert [f["nickname"] for f in doc["opened"]] == ["gina"]
    assert [(f["nickname"], f["resolution"]) for f in doc["resolved"]] == [("bob", "fixed")]
    opened, resolved = violation_changes(conn, ids["d3"])
    assert opened["nickname"].tolist() == ["gina"]
    assert resolved["nickname"].tolist() == ["bob"]
    first_opened, first_resolved = violation_changes(conn, ids["d1"])
    assert sorted(first_opened["nickname"]) == ["bob", "dave"] and first_resolved.empty


def test_sla_breach_and_days_open_later(runs, tmp_path):
    conn, ids = runs
    doc = read_json(write_daily_report(conn, ids["d10"], tmp_path))
    by_name = {f["nickname"]: f for f in doc["findings"]}
    assert by_name["dave"]["days_open"] == 9 and by_name["dave"]["sla_breached"] is True
    assert by_name["gina"]["days_open"] == 7 and by_name["gina"]["sla_breached"] is True
    assert doc["opened"] == [] and doc["resolved"] == []


def test_exceptions_in_force_and_expiring(runs, tmp_path):
    conn, ids = runs
    bundle = write_daily_report(conn, ids["d3"], tmp_path)
    doc = read_json(bundle)
    in_force = [(e["ticket"], e["expires_on"], e["expiring"]) for e in doc["exceptions_in_force"]]
    # SEC-9 is for another workspace; SEC-7 ends within 14 days of 11-03, SEC-8 does not.
    assert in_force == [("SEC-7", "2026-11-12", True), ("SEC-8", "2026-11-30", False)]
    assert [e["ticket"] for e in doc["exceptions_expiring"]] == ["SEC-7"]
    rows = csv.DictReader(io.StringIO(bundle.files["csv"].read_bytes().decode(), newline=""))
    carol = next(row for row in rows if row["nickname"] == "carol")
    assert carol["assessment"] == "excepted" and carol["exception_ticket"] == "SEC-7"
    assert carol["exception_expires_on"] == "2026-11-12"


def test_incomplete_run_is_never_a_compliance_result(runs, tmp_path):
    conn, ids = runs
    bundle = write_daily_report(conn, ids["partial"], tmp_path)
    doc = read_json(bundle)
    assert bundle.status == doc["status"] == "INCOMPLETE"
    assert doc["compliance_pct"] is None and doc["findings"] == []
    md = bundle.files["md"].read_text()
    html = bundle.files["html"].read_text()
    assert "compliance n/a" in md and "not** a compliance result" in md
    assert '<div class="v">n/a</div><div class="k">compliance</div>' in html
    assert "%" not in md.split("## Findings")[0].replace("Compliance is the share", "")
    opened, resolved = violation_changes(conn, ids["partial"])
    assert opened.empty and resolved.empty


def test_evidence_section_lists_every_raw_page(runs, tmp_path):
    conn, ids = runs
    bundle = write_daily_report(conn, ids["d3"], tmp_path)
    doc = read_json(bundle)
    pages = conn.execute(
        "SELECT sha256 FROM raw_api_pages WHERE run_id = ? ORDER BY seq", [ids["d3"]]
    ).fetchall()
    assert [p["sha256"] for p in doc["raw_pages"]] == [sha for (sha,) in pages]
    run = conn.execute(
        "SELECT run_hash, raw_sha256, policy_sha256 FROM collection_runs WHERE run_id = ?",
        [ids["d3"]],
    ).fetchone()
    assert doc["run"]["run_hash"] == run[0] and doc["policy"]["sha256"] == POLICY.sha256
    md = bundle.files["md"].read_text()
    for value in (ids["d3"], run[0], run[1], POLICY.sha256, __version__):
        assert value in md
    manifest = json.loads(bundle.manifest_path.read_bytes())
    assert manifest["run_id"] == ids["d3"] and manifest["run_hash"] == run[0]


def test_daily_counts_agree_with_daily_compliance_view(runs, tmp_path):
    conn, ids = runs
    doc = read_json(write_daily_report(conn, ids["d10"], tmp_path))
    view = conn.execute(
        "SELECT members, enabled, disabled, unknown, excepted, compliance_pct "
        "FROM daily_compliance WHERE run_id = ?",
        [ids["d10"]],
    ).fetchone()
    counts = doc["counts"]
    assert view[:5] == tuple(counts[k] for k in ("members", "enabled", "disabled", "unknown",
                                                 "excepted"))  # fmt: skip
    assert doc["compliance_pct"] == pytest.approx(view[5], abs=1e-3)


def test_emulated_runs_say_so_in_every_format(runs, tmp_path):
    conn, ids = runs
    emulated = write_daily_report(conn, ids["emu"], tmp_path)
    for kind in ("md", "html", "json"):
        assert EMULATOR_NOTICE in emulated.files[kind].read_text(), kind
    rows = list(csv.DictReader(io.StringIO(emulated.files["csv"].read_text())))
    assert rows and all(row["notice"] == EMULATOR_NOTICE for row in rows)
    assert "EMULATOR DATA" in emulated.summary_markdown
    real = write_daily_report(conn, ids["d3"], tmp_path)
    for kind in ("md", "html", "json", "csv"):
        assert "EMULATOR DATA" not in real.files[kind].read_text(), kind


def test_files_are_dated_by_run_day_and_named_by_run_time(runs, tmp_path):
    conn, ids = runs
    bundle = write_daily_report(conn, ids["partial"], tmp_path)
    assert bundle.directory == tmp_path / "2026-11-10" / "acme"
    assert bundle.files["md"].name.startswith("daily-20261110T090000Z-")
    assert sorted(bundle.files) == ["csv", "html", "json", "md"]
    assert bundle.manifest_path.name == bundle.files["md"].name.replace(".md", ".manifest.json")
