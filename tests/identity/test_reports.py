"""Daily and audit-period reports say how each member passes, who is out of scope and why,
which SSO attestation they rely on, how the directory was read, and what is not covered."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from tasks.evidence.store import EvidenceStore
from tasks.report import write_daily_report, write_period_report
from tasks.report.controls import COVERAGE_NOTE

ATTESTATION = "Okta <b>MFA</b> | every session, SEC-204"


@pytest.fixture(scope="module")
def history(tmp_path_factory, ident):
    """Three days of acme: the directory read whole, then halfway, then whole again."""
    rows = [
        ident.person("ana", True),
        ident.person("ben", False),
        ident.person("cleo", None),
        ident.person("dan", False, "owner"),
        ident.app("bot", True, kind='=HYPERLINK("http://x")'),
    ]
    users = [
        ident.listed(rows[0], mfa=False),
        ident.listed(rows[1], mfa=True),
        ident.listed(rows[2], mfa=False),
        ident.listed(rows[3], managed=False),
    ]
    policy = ident.policy(ident.SSO_POLICY.replace(
        "Okta sign-on policy 'MFA every session', reviewed 2026-10-01, ticket SEC-204",
        ATTESTATION,
    ))  # fmt: skip
    start = ident.DAY - timedelta(days=2)
    with EvidenceStore.open(tmp_path_factory.mktemp("history") / "e.duckdb") as store:
        run_ids = [
            ident.record(store, rows, users, policy=policy, day=start + timedelta(days=k),
                         limit=2, pages_read=1 if k == 1 else None)
            for k in range(3)
        ]  # fmt: skip
        yield store.conn, run_ids, start


def test_daily_report_shows_each_members_basis_and_the_attestation(history, tmp_path):
    conn, run_ids, _start = history
    bundle = write_daily_report(conn, run_ids[-1], tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    assert doc["bases"] == {
        "bitbucket_2sv": 1, "atlassian_2sv": 1, "idp_sso": 1, "exception": 0,
        "without_basis": 1, "out_of_scope": 1, "in_directory": 4,
    }  # fmt: skip
    assert doc["counts"]["members"] == 4 and doc["counts"]["violations"] == 1
    assert doc["compliance_pct"] == pytest.approx(75.0)
    assert doc["identity"]["sso"] == {
        "identity_provider": "Okta", "email_domains": ["example.com"], "attestation": ATTESTATION,
    }  # fmt: skip
    assert doc["identity"]["directory"]["status"] == "complete"
    assert [(m["kind"], m["excluded_by"]) for m in doc["out_of_scope"]] == [
        ('=HYPERLINK("http://x")', "scope.exclude_account_types: app_user")
    ]
    assert doc["coverage_note"] == COVERAGE_NOTE and "access tokens" in COVERAGE_NOTE

    rows = list(csv.DictReader(io.StringIO(bundle.files["csv"].read_text(encoding="utf-8"))))
    by_name = {row["nickname"] or row["display_name"]: row for row in rows}
    assert {name: row["mfa_basis"] for name, row in by_name.items()} == {
        "ana": "bitbucket_2sv", "ben": "atlassian_2sv", "cleo": "idp_sso", "dan": "",
        "Bot": "",
    }  # fmt: skip
    bot = by_name["Bot"]
    assert (bot["in_scope"], bot["assessment"], bot["account_type"]) == (
        "false",
        "out of scope",
        "app_user",
    )
    assert bot["kind"].startswith("'=")  # a formula-looking value is neutralised

    md = bundle.files["md"].read_text(encoding="utf-8")
    assert "## How members pass" in md and "| Identity-provider MFA" in md
    assert "Okta \\<b\\>MFA\\</b\\> \\| every session" in md  # escaped, one table cell
    assert "scope.exclude\\_account\\_types\\: app\\_user" in md
    assert COVERAGE_NOTE in md
    html = bundle.files["html"].read_text(encoding="utf-8")
    assert "Okta &lt;b&gt;MFA&lt;/b&gt; | every session" in html and "<b>MFA" not in html
    assert "What this evidence does not cover" in html


def test_daily_report_of_a_run_whose_directory_was_cut_short(history, tmp_path):
    conn, run_ids, _start = history
    bundle = write_daily_report(conn, run_ids[1], tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    assert doc["identity"]["directory"]["status"] == "incomplete"
    assert doc["bases"]["atlassian_2sv"] == doc["bases"]["idp_sso"] == 0
    assert doc["bases"]["without_basis"] == 3  # the Bitbucket part still counts: ana passes
    md = bundle.files["md"].read_text(encoding="utf-8")
    assert "NOT read whole (incomplete)" in md and "HTTP 503" in md
    assert "No member passes on atlassian\\_2sv or idp\\_sso in this run" in md


def test_period_report_gives_each_sources_coverage_and_each_members_days(history, tmp_path):
    conn, _run_ids, start = history
    bundle = write_period_report(conn, "acme", start, start + timedelta(days=2), tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    sources = {s["source"].split(" (")[0]: s for s in doc["sources"]}
    assert [(s["days_whole"], s["days_not_whole"], s["days_not_used"]) for s in sources.values()
            ] == [(3, 0, 0), (2, 1, 0), (2, 1, 0)]  # fmt: skip
    assert sources["Atlassian organization directory"]["at_end"] == "4 of 4 in scope listed"
    (attested,) = doc["sso_attestations"]
    assert (attested["attestation"], attested["days"]) == (ATTESTATION, 3)
    assert (attested["first_day"], attested["last_day"]) == (
        start.isoformat(),
        (start + timedelta(days=2)).isoformat(),
    )
    assert doc["bases_at_end"]["idp_sso"] == 1 and doc["bases_at_end"]["out_of_scope"] == 1
    assert doc["members_csv"] == bundle.files["members.csv"].name

    text = bundle.files["members.csv"].read_text(encoding="utf-8")
    rows = {r["nickname"] or r["display_name"]: r for r in csv.DictReader(io.StringIO(text))}
    days = {name: (r["days_bitbucket_2sv"], r["days_atlassian_2sv"], r["days_idp_sso"],
                   r["days_without_basis"], r["days_out_of_scope"], r["basis_last_day"])
            for name, r in rows.items()}  # fmt: skip
    assert days == {
        "ana": ("3", "0", "0", "0", "0", "bitbucket_2sv"),
        "ben": ("0", "2", "0", "1", "0", "atlassian_2sv"),
        "cleo": ("0", "0", "2", "1", "0", "idp_sso"),
        "dan": ("0", "0", "0", "3", "0", ""),
        "Bot": ("0", "0", "0", "0", "3", ""),
    }
    md = bundle.files["md"].read_text(encoding="utf-8")
    assert "## Sources of the second factor over the window" in md
    assert "SSO attestations relied on for idp_sso" in md and COVERAGE_NOTE in md
    html = bundle.files["html"].read_text(encoding="utf-8")
    assert "Okta &lt;b&gt;MFA&lt;/b&gt;" in html and "How each member passed" in html


def test_without_a_directory_the_report_says_so_and_relies_on_no_attestation(
    store, ident, tmp_path
):
    run_id = ident.record(store, [ident.person("ana", True), ident.app("bot")])
    bundle = write_daily_report(store.conn, run_id, tmp_path)
    doc = json.loads(bundle.files["json"].read_bytes())
    assert doc["identity"] == {
        "accepted_factors": ["bitbucket_2sv"],
        "exclude_account_types": ["app_user"],
        "sso": None,
        "directory": {"status": None, "error": None, "source": None},
    }
    md = bundle.files["md"].read_text(encoding="utf-8")
    assert "not configured" in md and "SSO attestation" not in md
    assert doc["status"] == "COMPLIANT" and doc["bases"]["out_of_scope"] == 1
