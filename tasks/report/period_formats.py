"""A `PeriodReport` in each format: Markdown, HTML (inline SVG), CSV (findings), JSON, SVG,
and a second CSV (`.members.csv`) of how each member passed over the window.

files = period_files(report, base="audit-2026-09-01_2026-11-30")
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from tasks.report import render
from tasks.report.chart import trend_svg
from tasks.report.controls import COVERAGE_NOTE, EMULATOR_NOTICE, controls_rows
from tasks.report.daily_formats import run_fields
from tasks.report.formatting import (
    fingerprints_text,
    iso_utc_series,
    pct,
    text,
    utc_day_series,
)
from tasks.report.identity import basis_rows
from tasks.report.model import PeriodReport
from tasks.vocabulary import Factor, MfaBasis, TwoStepState

PERIOD_SCHEMA = "bb2sv.period-report/1"

FINDING_CSV_COLUMNS = [
    "workspace", "finding_id", "member_key", "account_id", "uuid", "nickname", "display_name",
    "permission", "two_step_state", "severity", "first_seen", "resolved_at", "resolution",
    "days_to_fix", "due_at", "sla_days", "sla_breached", "sla", "notice",
]  # fmt: skip
MEMBER_CSV_COLUMNS = [
    "workspace", "member_key", "account_id", "nickname", "display_name", "permission",
    "account_type", "last_day", "in_scope_last_day", "basis_last_day", "excluded_by_last_day",
    "days_seen", "days_bitbucket_2sv", "days_atlassian_2sv", "days_idp_sso", "days_exception",
    "days_without_basis", "days_out_of_scope", "notice",
]  # fmt: skip
MEMBER_TABLE_COLUMNS = ["nickname", "display_name", "account_id", "basis_last_day",
                        "days_seen", "days_bitbucket_2sv", "days_atlassian_2sv", "days_idp_sso",
                        "days_exception", "days_without_basis", "days_out_of_scope"]  # fmt: skip
# daily_compliance counts shown per day
TREND_COUNTS = ("members", *TwoStepState, "excepted", "out_of_scope",
                *(f"basis_{factor}" for factor in Factor), "without_basis")  # fmt: skip


def period_files(report: PeriodReport, base: str) -> dict[str, bytes]:
    svg = trend_svg(
        _trend_points(report),
        title=f"Daily 2SV compliance: {report.workspace}",
        notice=EMULATOR_NOTICE if report.emulated else None,
    )
    context = period_context(report, svg=svg, svg_name=f"{base}.svg")
    return {
        f"{base}.md": render.render_markdown("period.md.j2", context),
        f"{base}.html": render.render_html("period.html.j2", context),
        f"{base}.csv": render.render_csv(finding_rows(report, for_csv=True)),
        f"{base}.json": render.render_json(period_document(report, f"{base}.members.csv")),
        f"{base}.svg": (svg + "\n").encode("utf-8"),
        f"{base}.members.csv": render.render_csv(member_rows(report)),
    }


def _trend_points(report: PeriodReport) -> list[tuple[Any, float | None]]:
    values = report.trend["compliance_pct"].astype("Float64")
    return [
        (day, None if pd.isna(value) else float(value))
        for day, value in zip(report.trend["day"], values, strict=True)
    ]


def finding_rows(report: PeriodReport, *, for_csv: bool) -> pd.DataFrame:
    rows = report.findings.copy()
    rows.insert(0, "workspace", report.workspace)
    for column in ("first_seen", "resolved_at", "due_at"):
        rows[column] = iso_utc_series(rows[column]).where(rows[column].notna(), None)
    rows["days_to_fix"] = rows["days_to_fix"].round(2)
    rows["sla_breached"] = rows["sla_breached"].astype("boolean")
    rows["notice"] = EMULATOR_NOTICE if report.emulated else None
    rows = rows[FINDING_CSV_COLUMNS]
    if not for_csv:
        rows = rows.drop(columns=["workspace", "notice"])
    return rows


def member_rows(report: PeriodReport) -> pd.DataFrame:
    """How each member passed over the window (the `.members.csv` file)."""
    rows = report.members.copy()
    rows.insert(0, "workspace", report.workspace)
    rows["last_day"] = utc_day_series(rows["last_day"])
    rows["in_scope_last_day"] = rows["in_scope_last_day"].astype("boolean")
    rows["notice"] = EMULATOR_NOTICE if report.emulated else None
    return rows[MEMBER_CSV_COLUMNS]


def _bases_at_end(report: PeriodReport) -> dict[str, int] | None:
    """Members by basis on the last day of the window with complete evidence."""
    evidence = report.trend[report.trend["has_evidence"]]
    if evidence.empty:
        return None
    last = evidence.iloc[-1]
    counts = {item.value: int(last[f"basis_{item.value}"]) for item in MfaBasis}
    counts.update(without_basis=int(last["without_basis"]), out_of_scope=int(last["out_of_scope"]))
    return counts


def _attestation_rows(report: PeriodReport) -> list[dict[str, Any]]:
    """Each SSO attestation relied on in the window, with its first and last day."""
    rows = report.attestations.copy()
    for column in ("first_day", "last_day"):
        rows[column] = utc_day_series(rows[column])
    return render.records(rows)


def _trend_rows(report: PeriodReport) -> list[dict[str, Any]]:
    trend = report.trend
    shown = pd.DataFrame({"day": [day.isoformat() for day in trend["day"]]})
    for column in TREND_COUNTS:
        shown[column] = trend[column].astype("Int64").astype("string").fillna("no evidence")
    shown["compliance_pct"] = [pct(value) for value in trend["compliance_pct"]]
    return shown.to_dict(orient="records")


def period_context(report: PeriodReport, *, svg: str, svg_name: str) -> dict[str, Any]:
    findings = report.findings.head(render.MAX_TABLE_ROWS).copy()
    for column in ("first_seen", "resolved_at", "due_at"):
        findings[column] = utc_day_series(findings[column])
    findings["days_to_fix"] = [
        "" if pd.isna(value) else f"{value:.1f}" for value in findings["days_to_fix"]
    ]
    findings = findings.astype("object").where(findings.notna(), "")
    exceptions = report.exceptions.copy()
    exceptions["member"] = exceptions["nickname"].where(
        exceptions["nickname"].notna(), exceptions["account_id"]
    )
    exceptions["expires_on"] = utc_day_series(exceptions["expires_on"])
    evidence_pct = report.trend["compliance_pct"].dropna()
    sla = report.findings["sla"].value_counts()
    last = report.last_run
    bases = _bases_at_end(report)
    members = report.members.head(render.MEMBER_TABLE_ROWS)[MEMBER_TABLE_COLUMNS]
    return {
        "emulated": report.emulated,
        "notice": EMULATOR_NOTICE,
        "title": f"2SV audit period: {report.workspace}, {report.start} to {report.end}",
        "tool_version": text(last.tool_version) if last else "",
        "workspace": report.workspace,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "status": report.status,
        "signing_key": fingerprints_text(report.signing_keys),
        "days_in_window": report.days_in_window,
        "days_with_evidence": report.days_with_evidence,
        "coverage_pct": pct(report.days_with_evidence * 100 / report.days_in_window),
        "incomplete_runs": report.incomplete_runs,
        "gaps": [
            {"start": a.isoformat(), "end": b.isoformat(), "days": (b - a).days + 1}
            for a, b in report.gaps
        ],
        "gap_days": report.days_in_window - report.days_with_evidence,
        "end_counts": report.end_counts,
        "svg": svg,
        "svg_name": svg_name,
        "trend": _trend_rows(report),
        "trend_min": pct(evidence_pct.min() if len(evidence_pct) else None),
        "trend_max": pct(evidence_pct.max() if len(evidence_pct) else None),
        "trend_last": pct(evidence_pct.iloc[-1] if len(evidence_pct) else None),
        "findings": findings.to_dict(orient="records"),
        "findings_total": len(report.findings),
        "sla_met": int(sla.get("met", 0)),
        "sla_breached": int(sla.get("breached", 0) + sla.get("breached, still open", 0)),
        "sla_open": int(sla.get("open, within SLA", 0)),
        "exceptions": exceptions.astype("object").where(exceptions.notna(), "").to_dict("records"),
        "runs_total": len(report.runs),
        "last_run": {key: text(value) for key, value in asdict(last).items()}
        if last
        else {
            "run_id": "n/a",
            "run_hash": "n/a",
            "source": "n/a",
            "tool_version": "n/a",
        },  # fmt: skip
        "policy_sha256s": report.policy_sha256s,
        "controls": controls_rows(),
        "bases": None if bases is None else basis_rows(bases),
        "sources": report.sources,
        "attestations": _attestation_rows(report),
        "members": render.records(members.astype("object").where(members.notna(), "")),
        "members_total": len(report.members),
        "coverage_note": COVERAGE_NOTE,
    }


def period_document(report: PeriodReport, members_csv: str) -> dict[str, Any]:
    """The report as data; the member rows stay in the CSV named by `members_csv`."""
    trend = report.trend.drop(columns=["accepted_factors", "sso_attestation"])
    trend["day"] = [day.isoformat() for day in trend["day"]]
    trend["compliance_pct"] = trend["compliance_pct"].round(4)
    runs = report.runs[
        ["run_id", "started_at", "status", "member_count", "run_hash", "policy_sha256", "emulated"]
    ].copy()
    runs["started_at"] = iso_utc_series(runs["started_at"])
    exceptions = report.exceptions.copy()
    for column in ("expires_on", "first_day_in_force", "last_day_in_force"):
        exceptions[column] = utc_day_series(exceptions[column])
    return {
        "schema": PERIOD_SCHEMA,
        "notice": EMULATOR_NOTICE if report.emulated else None,
        "emulated": report.emulated,
        "workspace": report.workspace,
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "status": report.status,
        "signing_key_fingerprints": report.signing_keys,
        "coverage": {
            "days_in_window": report.days_in_window,
            "days_with_complete_evidence": report.days_with_evidence,
            "incomplete_or_failed_runs": report.incomplete_runs,
            "gaps": [
                {"from": a.isoformat(), "to": b.isoformat(), "days": (b - a).days + 1}
                for a, b in report.gaps
            ],
        },
        "end_counts": report.end_counts,
        "daily": render.records(trend.drop(columns=["has_evidence"])),
        "findings": render.records(finding_rows(report, for_csv=False)),
        "exceptions": render.records(exceptions),
        "runs": render.records(runs),
        "last_run": run_fields(report.last_run) if report.last_run else None,
        "policy_sha256s": report.policy_sha256s,
        "controls": controls_rows(),
        "bases_at_end": _bases_at_end(report),
        "sources": report.sources,
        "sso_attestations": _attestation_rows(report),
        "members_csv": members_csv,
        "coverage_note": COVERAGE_NOTE,
    }
