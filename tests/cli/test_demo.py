"""`bb2sv demo` end to end on a short history (the real command uses 90 days)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from bb2sv.demo import run_demo
from tasks.evidence.query import run_query
from tasks.evidence.verification import verify_evidence

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_demo_runs_twice_into_separate_folders(tmp_path):
    console = Console(file=io.StringIO())
    first = run_demo(tmp_path, days=6, members=40, console=console)
    second = run_demo(tmp_path, days=6, members=40, console=console)

    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 2, "each run writes its own folder; the first is untouched"
    for summary, folder in zip((first, second), folders, strict=True):
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
        audit = re.findall(r"audit report: (\S+\.html)", summary)
        assert len(audit) == 3
        html = (folder.parent / audit[0]).read_text(encoding="utf-8")
        assert "EMULATOR DATA" in html
        assert "bb2sv query" in summary
