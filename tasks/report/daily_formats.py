"""A `DailyReport` in each format: Markdown, HTML, CSV (member rows) and JSON.

files = daily_files(report, base="daily-20261127T060000Z-1f3a9c2e")
files["daily-...md"]  # bytes
"""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import pandas as pd

from tasks.report import render
from tasks.report.controls import (
    COVERAGE_NOTE,
    EMULATOR_NOTICE,
    GUIDANCE_STEPS,
    GUIDANCE_TITLE,
    UNNAMED_EXCEPTIONS_NOTE,
    controls_rows,
)
from tasks.report.daily import EXPIRY_WARNING_DAYS
from tasks.report.formatting import (
    display_utc,
    display_utc_series,
    fingerprint,
    iso_day,
    iso_utc,
    iso_utc_series,
    pct,
    text,
    utc_day_series,
)
from tasks.report.identity import basis_rows, directory_line, policy_identity
from tasks.report.model import DailyReport, RunInfo

DAILY_SCHEMA = "bb2sv.daily-report/1"
RAW_PAGES_SHOWN = 5

TIME_COLUMNS = ("first_seen", "due_at", "first_observed", "observed_at", "fetched_at")


def daily_files(report: DailyReport, base: str) -> dict[str, bytes]:
    context = daily_context(report)
    return {
        f"{base}.md": render.render_markdown("daily.md.j2", context),
        f"{base}.html": render.render_html("daily.html.j2", context),
        f"{base}.csv": report.members_csv,
        f"{base}.json": render.render_json(daily_document(report, members_csv=f"{base}.csv")),
    }


def run_fields(run: RunInfo) -> dict[str, Any]:
    fields = asdict(run)
    fields["started_at"] = iso_utc(run.started_at)
    fields["finished_at"] = iso_utc(run.finished_at)
    return fields


def _display_run(run: RunInfo) -> dict[str, str]:
    fields = {key: text(value) for key, value in asdict(run).items()}
    fields["started_at"] = display_utc(run.started_at)
    fields["finished_at"] = display_utc(run.finished_at)
    return fields


def _display_rows(rows: pd.DataFrame, limit: int | None = None) -> list[SimpleNamespace]:
    """Rows for the templates, as objects: Jinja reads `row.name` as an attribute first, and
    on a dict that lookup fails before the key is tried (half the time of rendering the
    1,000 findings a large workspace shows)."""
    if rows.empty:
        return []
    shown = rows.head(limit) if limit is not None else rows
    shown = shown.copy()
    for column in shown.columns:
        if column in ("first_seen", "due_at"):
            shown[column] = utc_day_series(shown[column])
        elif column == "fetched_at":
            shown[column] = display_utc_series(shown[column])
        elif column == "expires_on":
            shown[column] = utc_day_series(shown[column])
    return [SimpleNamespace(**row) for row in render.records(shown, missing="")]


def _member_label(rows: pd.DataFrame) -> pd.Series:
    """How an exception names its member: the nickname when given, else the account id."""
    return rows["nickname"].where(rows["nickname"].notna(), rows["account_id"]).fillna("")


def daily_context(report: DailyReport) -> dict[str, Any]:
    run_started = report.run.started_at
    findings = report.findings.copy()
    findings["sla"] = findings["sla_breached"].map({True: "breached", False: "within SLA"})
    findings.loc[findings["in_grace"].fillna(False).astype(bool), "sla"] = "grace period"
    exceptions = report.exceptions.assign(member=_member_label(report.exceptions))
    expiring = report.expiring.assign(member=_member_label(report.expiring))
    return {
        "emulated": report.run.emulated,
        "notice": EMULATOR_NOTICE,
        "title": f"2SV compliance: {report.run.workspace}, {display_utc(run_started)} UTC",
        "tool_version": text(report.run.tool_version),
        "workspace": report.run.workspace,
        "status": report.status,
        "compliance_pct": pct(report.compliance_pct),
        "counts": asdict(report.counts),
        "policy": {key: text(value) for key, value in asdict(report.policy).items()},
        "run": _display_run(report.run),
        "signing_key": fingerprint(report.run.signing_key_id),
        "previous_run": _display_run(report.previous_run) if report.previous_run else None,
        "source_changed": report.source_changed,
        "directory_source_changed": report.directory_source_changed,
        "findings": _display_rows(findings, render.MAX_TABLE_ROWS),
        "findings_total": len(findings),
        "opened": _display_rows(report.opened),
        "resolved": _display_rows(report.resolved),
        "exceptions": _display_rows(exceptions),
        "expiring": _display_rows(expiring),
        "expiry_days": EXPIRY_WARNING_DAYS,
        "unnamed_exceptions": _display_rows(report.unnamed_exceptions),
        "unnamed_note": UNNAMED_EXCEPTIONS_NOTE,
        "raw_pages": _display_rows(report.raw_pages, RAW_PAGES_SHOWN),
        "raw_pages_total": len(report.raw_pages),
        "guidance_title": GUIDANCE_TITLE,
        "guidance_steps": GUIDANCE_STEPS,
        "controls": controls_rows(),
        "bases": basis_rows(asdict(report.bases)),
        "in_directory": report.bases.in_directory,
        "directory": directory_line(report.run),
        "identity": policy_identity(report.policy),
        "out_of_scope": _display_rows(report.out_of_scope),
        "members": _display_rows(report.members_shown),
        "members_total": report.counts.members,
        "coverage_note": COVERAGE_NOTE,
    }


def _json_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    if rows.empty:
        return []
    converted = rows.copy()
    for column in converted.columns:
        if column in TIME_COLUMNS:
            converted[column] = iso_utc_series(converted[column])
        elif column == "expires_on":
            converted[column] = utc_day_series(converted[column])
    return render.records(converted)


def daily_document(report: DailyReport, members_csv: str) -> dict[str, Any]:
    """The report as data. Member rows stay in the CSV beside it (named by `members_csv`):
    at 100,000 members they would make this document ten times larger and slower to build.
    """
    run = report.run
    previous = report.previous_run
    pct_value = report.compliance_pct
    return {
        "schema": DAILY_SCHEMA,
        "notice": EMULATOR_NOTICE if run.emulated else None,
        "emulated": run.emulated,
        "workspace": run.workspace,
        "day": iso_day(run.started_at),
        "status": report.status,
        "signing_key_fingerprint": fingerprint(run.signing_key_id),
        "compliance_pct": None if pct_value is None else round(pct_value, 4),
        "counts": asdict(report.counts),
        "policy": asdict(report.policy),
        "run": run_fields(run),
        "previous_complete_run": None
        if previous is None
        else {
            "run_id": previous.run_id,
            "started_at": iso_utc(previous.started_at),
            "run_hash": previous.run_hash,
            "source": previous.source,
            "directory_source": previous.directory_source,
        },
        "source_changed": report.source_changed,
        "directory_source_changed": report.directory_source_changed,
        "findings": _json_rows(report.findings),
        "opened": _json_rows(report.opened),
        "resolved": _json_rows(report.resolved),
        "exceptions_in_force": _json_rows(report.exceptions),
        "exceptions_expiring": _json_rows(report.expiring),
        # Only when there are some: reports of runs stored before 0.4 keep their bytes.
        **(
            {"exceptions_covering_nobody": _json_rows(report.unnamed_exceptions)}
            if not report.unnamed_exceptions.empty
            else {}
        ),
        "raw_pages": _json_rows(report.raw_pages),
        "identity": {
            **policy_identity(report.policy),
            "directory": {
                "status": run.directory_status,
                "error": run.directory_error,
                "source": run.directory_source,
            },
        },
        "bases": asdict(report.bases),
        "out_of_scope": _json_rows(report.out_of_scope),
        "coverage_note": COVERAGE_NOTE,
        "members_csv": members_csv,
        "controls": controls_rows(),
        "remediation": {"title": GUIDANCE_TITLE, "steps": list(GUIDANCE_STEPS)},
    }
