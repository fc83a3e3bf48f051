"""An exception covers the account_id it names: a nickname is its user's to choose, so one
that names only a nickname covers nobody in runs stored by bb2sv 0.4 or later (runs stored
before are judged as they were then)."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from tasks.evidence.store import EvidenceStore
from tasks.policy import parse_policy
from tasks.preflight import preflight
from tasks.report import write_daily_report, write_period_report

DAY = date(2026, 11, 2)
POLICY = parse_policy(
    """\
exceptions:
  - {nickname: deploy-bot, workspace: acme, reason: Service account,
     approved_by: CISO, ticket: SEC-1, expires_on: 2027-01-01}
  - {account_id: "557058:builder", nickname: build-bot, workspace: acme,
     reason: Build account, approved_by: CISO, ticket: SEC-2, expires_on: 2027-01-01}
""",
    "policy.yaml",
)


def people(member) -> list:
    """Mallory took the excepted nicknames; the build account renamed itself."""
    return [
        member("alice", True, "owner"),
        member("deploy-bot", False, display_name="Mallory", account_id="557058:mallory"),
        member("build-bot", False, display_name="Mallory Too", account_id="557058:mallory2"),
        member("builder-renamed", False, account_id="557058:builder"),
    ]


@pytest.fixture
def evidence(tmp_path, build):
    """One run of `acme` stored by this bb2sv, one stored by 0.3.0: (path, run ids)."""
    path = tmp_path / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        now = build.record(store, "acme", DAY, people(build.member), policy=POLICY)
        then = build.record(
            store, "acme", DAY, people(build.member), policy=POLICY, hour=3, tool_version="0.3.0"
        )
    return path, now, then


def assessed(conn, run_id: str) -> dict[str, tuple]:
    rows = conn.execute(
        "SELECT account_id, excepted, exception_ticket FROM complete_run_members "
        "WHERE run_id = ? ORDER BY account_id",
        [run_id],
    ).fetchall()
    return {account_id: (excepted, ticket) for account_id, excepted, ticket in rows}


def test_a_nickname_alone_covers_nobody_in_runs_stored_from_0_4(evidence):
    path, now, then = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        judged_now, judged_then = assessed(store.conn, now), assessed(store.conn, then)
    assert judged_now == {
        "557058:alice": (False, None),
        "557058:builder": (True, "SEC-2"),  # by account_id, whatever its nickname now
        "557058:mallory": (False, None),
        "557058:mallory2": (False, None),
    }
    # 0.3.0 read a nickname as naming the member (even beside an account_id): its run is
    # judged as it was then.
    assert judged_then["557058:mallory"] == (True, "SEC-1")
    assert judged_then["557058:mallory2"] == (True, "SEC-2")


def test_the_daily_report_lists_exceptions_covering_nobody(evidence, tmp_path):
    path, now, then = evidence
    with EvidenceStore.open(path, read_only=True) as store:
        report_now = write_daily_report(store.conn, now, tmp_path / "now")
        report_then = write_daily_report(store.conn, then, tmp_path / "then")
    doc_now = json.loads(report_now.files["json"].read_bytes())
    doc_then = json.loads(report_then.files["json"].read_bytes())
    assert report_now.status == "NON-COMPLIANT"
    assert doc_now["counts"]["excepted"] == 1 and doc_now["counts"]["violations"] == 2
    assert [e["ticket"] for e in doc_now["exceptions_in_force"]] == ["SEC-2"]
    assert [(e["nickname"], e["ticket"]) for e in doc_now["exceptions_covering_nobody"]] == [
        ("deploy-bot", "SEC-1")
    ]
    markdown = report_now.files["md"].read_text()
    assert "**Covering nobody (1):** deploy-bot (SEC-1, 2027-01-01)." in markdown
    assert "Covering nobody (1):</strong> deploy-bot" in report_now.files["html"].read_text()
    assert "exceptions_covering_nobody" not in doc_then
    assert sorted(e["ticket"] for e in doc_then["exceptions_in_force"]) == ["SEC-1", "SEC-2"]
    assert "Covering nobody" not in report_then.files["md"].read_text()


def test_the_period_report_lists_only_exceptions_that_covered_someone(evidence, tmp_path, build):
    path, _now, _then = evidence
    with EvidenceStore.open(path) as store:
        build.record(store, "acme", date(2026, 11, 3), people(build.member), policy=POLICY)
    with EvidenceStore.open(path, read_only=True) as store:
        both = write_period_report(store.conn, "acme", DAY, DAY, tmp_path / "a")
        later = write_period_report(store.conn, "acme", date(2026, 11, 3), DAY.replace(day=3),
                                    tmp_path / "b")  # fmt: skip
    listed = {
        name: sorted(e["ticket"] for e in json.loads(b.files["json"].read_bytes())["exceptions"])
        for name, b in (("both", both), ("later", later))
    }
    # SEC-1 covered Mallory in the run 0.3.0 stored on 11-02, and nobody on 11-03.
    assert listed == {"both": ["SEC-1", "SEC-2"], "later": ["SEC-2"]}


def test_collect_warns_of_an_exception_that_names_no_account_id(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BITBUCKET_TOKEN", "t0ken-for-the-warning-test")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "exceptions:\n  - {nickname: deploy-bot, workspace: acme, reason: r, approved_by: c, "
        "ticket: SEC-1, expires_on: 2027-01-01}\n"
    )
    with caplog.at_level(logging.WARNING, logger="bb2sv.preflight"):
        preflight(tmp_path / "e.duckdb", tmp_path / "reports", policy)
    assert (
        "The policy's exception SEC-1 (nickname 'deploy-bot', workspace acme) names no "
        "account_id, so it covers nobody" in caplog.text
    )
    assert "t0ken" not in caplog.text
