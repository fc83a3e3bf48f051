"""Loading an audit-period report (see `model.PeriodReport`) for a window of UTC days.

    report = load_period(conn, "acme", date(2026, 9, 1), date(2026, 11, 30))
    report.days_with_evidence, report.gaps, report.findings
    report.members, report.sources, report.attestations   # how members passed, and on what

Judged as of the end of the window: a finding fixed after the window is shown as open, so
the report of a closed period does not change when later runs are added.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import duckdb
import pandas as pd

from tasks.report.daily import load_run, sort_findings
from tasks.report.formatting import fingerprint
from tasks.report.model import COMPLIANT, INCOMPLETE, NON_COMPLIANT, PeriodReport, RunInfo
from tasks.report.output import ReportError
from tasks.report.queries import first_row, frame
from tasks.vocabulary import RunStatus


def load_period(
    conn: duckdb.DuckDBPyConnection, workspace: str, start: date, end: date
) -> PeriodReport:
    if start > end:
        raise ReportError(f"the window starts after it ends ({start} > {end}); swap the dates")
    params = {"workspace": workspace, "start": start, "end": end}
    _require_workspace(conn, workspace)
    days = frame(conn, "period_days", **params)
    days["day"] = pd.to_datetime(days["day"]).dt.date
    days["has_evidence"] = days["run_id"].notna()
    runs = frame(conn, "period_runs", **params)
    complete = runs[runs["status"] == RunStatus.COMPLETE].reset_index(drop=True)
    last_run: RunInfo | None = None
    end_counts = None
    if not complete.empty:
        last_id = str(complete["run_id"].iloc[-1])
        last_run = load_run(conn, last_id)[0]
        end_counts = first_row(conn, "run_account_counts", run_id=last_id)
        end_counts = {key: int(value) for key, value in end_counts.items()}
        end_counts.update(run_id=last_id, run_day=last_run.started_at.date().isoformat())
    findings = _findings(frame(conn, "period_findings", **params))
    exceptions = frame(conn, "period_exceptions", **params)
    exceptions["state"] = [
        f"expired {expires:%Y-%m-%d}" if expires <= end else "in force"
        for expires in pd.to_datetime(exceptions["expires_on"]).dt.date
    ]
    gaps = gap_ranges(days.loc[~days["has_evidence"], "day"].tolist())
    status = _status(findings, gaps)
    return PeriodReport(
        workspace=workspace,
        start=start,
        end=end,
        status=status,
        days_in_window=len(days),
        days_with_evidence=int(days["has_evidence"].sum()),
        gaps=gaps,
        trend=days,
        findings=findings,
        exceptions=exceptions,
        runs=complete,
        end_counts=end_counts,
        last_run=last_run,
        emulated=bool(runs["emulated"].any()) if not runs.empty else False,
        incomplete_runs=int((runs["status"] != RunStatus.COMPLETE).sum()),
        policy_sha256s=sorted(set(complete["policy_sha256"].dropna().astype(str))),
        members=frame(conn, "period_members", **params),
        sources=source_coverage(days),
        attestations=frame(conn, "period_attestations", **params),
        signing_keys=signing_keys(complete),
    )


def signing_keys(runs: pd.DataFrame) -> list[dict]:
    """Each key that signed the window's complete runs, by fingerprint ("unsigned" for runs
    no key signed), with its number of runs: most runs first, then by fingerprint."""
    keys = runs["signing_key_id"].astype("object").where(runs["signing_key_id"].notna(), None)
    counts = Counter(fingerprint(key) for key in keys)
    return [
        {"fingerprint": name, "runs": count}
        for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def source_coverage(days: pd.DataFrame) -> list[dict]:
    """Each source of who has a second factor over the window's days with evidence: days it
    was read whole (the SSO attestation: in force with the directory read whole), days it
    was not, days it was not used, and what it covered on the last of those days."""
    evidence = days[days["has_evidence"]].reset_index(drop=True)
    status = evidence["directory_status"]
    whole, configured = status == RunStatus.COMPLETE, status.notna()
    attested = evidence["sso_attestation"].notna()
    if evidence.empty:
        bitbucket = directory = sso = "no complete run"
    else:
        last = evidence.iloc[-1]
        members = int(last["members"])
        bitbucket = f"{members - int(last['unknown'])} of {members} in scope with a known state"
        directory = (
            f"{int(last['in_directory'])} of {members} in scope listed"
            if last["directory_status"] == RunStatus.COMPLETE
            else f"not read whole ({last['directory_status']})"
            if pd.notna(last["directory_status"])
            else "not configured"
        )
        sso = (
            f"{int(last['basis_idp_sso'])} pass on it"
            if pd.notna(last["sso_attestation"])
            else "not accepted"
        )
    return [
        _source("Bitbucket members listing (has_2fa_enabled)",
                len(evidence), len(days) - len(evidence), 0, bitbucket),
        _source("Atlassian organization directory (mfaEnabled, managed accounts)",
                whole.sum(), (configured & ~whole).sum(), (~configured).sum(), directory),
        _source("Identity-provider MFA (the policy's SSO attestation)",
                (attested & whole).sum(), (attested & ~whole).sum(), (~attested).sum(), sso),
    ]  # fmt: skip


def _source(name: str, whole: int, not_whole: int, not_used: int, at_end: str) -> dict:
    return {
        "source": name,
        "days_whole": int(whole),
        "days_not_whole": int(not_whole),
        "days_not_used": int(not_used),
        "at_end": at_end,
    }


def gap_ranges(missing: list[date]) -> list[tuple[date, date]]:
    """Consecutive missing days folded into inclusive (first, last) ranges."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(missing):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _findings(rows: pd.DataFrame) -> pd.DataFrame:
    resolved = rows["resolved_at"].notna()
    rows["days_to_fix"] = (rows["resolved_at"] - rows["first_seen"]).dt.total_seconds() / 86400
    rows["sla"] = "open, within SLA"
    rows.loc[~resolved & rows["sla_breached"], "sla"] = "breached, still open"
    rows.loc[resolved & ~rows["sla_breached"].astype(bool), "sla"] = "met"
    rows.loc[resolved & rows["sla_breached"].astype(bool), "sla"] = "breached"
    return sort_findings(rows).reset_index(drop=True)


def _status(findings: pd.DataFrame, gaps: list[tuple[date, date]]) -> str:
    """Breaches are facts even with gaps; without breaches, gaps make the period unproven."""
    if bool(findings["sla_breached"].astype(bool).any()):
        return NON_COMPLIANT
    if gaps:
        return INCOMPLETE
    return COMPLIANT


def _require_workspace(conn: duckdb.DuckDBPyConnection, workspace: str) -> None:
    known = frame(conn, "workspaces")["workspace"].tolist()
    if workspace not in known:
        listed = ", ".join(known) if known else "none yet"
        raise ReportError(
            f"no runs for workspace {workspace!r} in the evidence file (workspaces: {listed}); "
            "check the slug"
        )
