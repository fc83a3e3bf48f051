"""A run that read the Bitbucket API at another base URL than the workspace's previous
complete run is visible: `daily_compliance.source_changed` and the daily report say so."""

from __future__ import annotations

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from tasks.evidence.query import run_query
from tasks.evidence.store import EvidenceStore
from tasks.report import write_daily_report

REAL = "https://api.bitbucket.org"
OTHER = "https://bitbucket.attacker.example"
START = date(2026, 10, 1)


@pytest.fixture(scope="module")
def history(tmp_path_factory, build) -> SimpleNamespace:
    """Day 1 and 2 from Bitbucket, day 3 (and an incomplete run on day 4) from another URL,
    day 4 from it again."""
    root = tmp_path_factory.mktemp("source")
    members = [build.member("alice", True, "owner"), build.member("bob", False)]
    db = root / "evidence.duckdb"
    with EvidenceStore.open(db) as store:
        ids = [
            build.record(store, "acme", START + timedelta(days=n), members, origin=origin)
            for n, origin in enumerate([REAL, REAL, OTHER, OTHER])
        ]
        cut = build.record(store, "acme", START + timedelta(days=3), members, hour=9,
                           status="incomplete", origin=REAL)  # fmt: skip
        bundles = {
            name: write_daily_report(store.conn, run_id, root / "r")
            for name, run_id in {"same": ids[1], "changed": ids[2], "cut": cut}.items()
        }
    return SimpleNamespace(db=db, ids=ids, bundles=bundles)


def read(bundle, kind: str) -> str:
    return bundle.files[kind].read_text("utf-8")


def test_daily_compliance_flags_the_day_whose_run_changed_source(history):
    frame = run_query(history.db, "SELECT day, source_changed FROM daily_compliance ORDER BY day")
    assert frame["source_changed"].tolist() == [False, False, True, False]


def test_the_daily_report_says_the_source_changed(history):
    changed = history.bundles["changed"]
    markdown = read(changed, "md")
    assert "**Source changed:** this run read the Bitbucket API at " in markdown
    as_md = {url: f"{url}/2.0".replace(":", r"\:") for url in (OTHER, REAL)}  # no autolinks
    assert as_md[OTHER] in markdown and f"read it at {as_md[REAL]}" in markdown
    assert "Source changed: this run read the Bitbucket API at" in read(changed, "html")
    document = json.loads(read(changed, "json"))
    assert document["source_changed"] is True
    assert document["previous_complete_run"]["source"] == f"{REAL}/2.0"


def test_an_unchanged_source_says_nothing_and_any_run_is_compared(history):
    same = history.bundles["same"]
    assert "Source changed" not in read(same, "md") + read(same, "html")
    assert json.loads(read(same, "json"))["source_changed"] is False
    # An incomplete run back at the old URL: compared with the previous complete run (OTHER).
    cut = history.bundles["cut"]
    assert json.loads(read(cut, "json"))["source_changed"] is True
    assert "**Source changed:**" in read(cut, "md")
