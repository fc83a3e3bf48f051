"""`bb2sv demo` end to end on a short history (the real command uses 90 days)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from bb2sv.demo import new_run_dir, run_demo
from tasks.evidence.query import run_query
from tasks.evidence.verification import verify_evidence


@pytest.mark.usefixtures("prefect_harness")
def test_demo_writes_verified_evidence_and_reports(tmp_path):
    summary = run_demo(tmp_path, days=6, members=40, console=Console(file=io.StringIO()))

    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    db = folder / "evidence.duckdb"
    assert str(db) in summary
    anchors = folder / "reports" / "anchors.jsonl"
    assert f"--anchor-log {anchors}" in summary
    verified = verify_evidence(db, anchor_log=anchors)  # backfill and flow both anchor
    assert verified.ok, verified.report()
    assert f"{3 * 6} of {3 * 6} runs anchored" in verified.report()
    runs = run_query(db, "select status, count(*) as n from collection_runs group by 1")
    counts = dict(zip(runs["status"], runs["n"], strict=True))
    # 5 backfilled days × 3 workspaces + today's flow run; two days of one are incomplete
    assert counts == {"complete": 3 * 6 - 2, "incomplete": 2}
    # The demo's exception names its member by account_id (a nickname alone covers nobody).
    policy = (folder / "policy-sso.yaml").read_text(encoding="utf-8")
    assert "exceptions:\n  - account_id: " in policy
    audit = re.findall(r"audit report: (\S+\.html)", summary)
    assert len(audit) == 3
    html = (folder.parent / audit[0]).read_text(encoding="utf-8")
    assert "EMULATOR DATA" in html
    assert "bb2sv query" in summary


def test_each_demo_run_gets_a_new_folder_and_leaves_earlier_ones_alone(tmp_path):
    first = new_run_dir(tmp_path)
    (first / "evidence.duckdb").write_bytes(b"earlier run")
    second, third = new_run_dir(tmp_path), new_run_dir(tmp_path)  # same second, most likely
    assert len({first, second, third}) == 3
    assert all(folder.parent == tmp_path and folder.is_dir() for folder in (second, third))
    assert (first / "evidence.duckdb").read_bytes() == b"earlier run"
    assert list(second.iterdir()) == [] and list(third.iterdir()) == []
