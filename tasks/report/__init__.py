"""Compliance reports built from the evidence file alone.

    from tasks.report import write_daily_report, write_period_report, violation_changes
    bundle = write_daily_report(store.conn, run_id, "reports")
    bundle.files["html"], bundle.manifest_path, bundle.status
    bundle = write_period_report(store.conn, "acme", date(2026, 9, 1), date(2026, 11, 30), "out")
    opened, resolved = violation_changes(store.conn, run_id)

Files go to `reports_dir/<YYYY-MM-DD>/<workspace>/` and are never overwritten: writing the
same report again leaves identical files alone, and a different file under the same name
raises `ReportConflict`.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path

import duckdb

from tasks.canonical import sha256_hex
from tasks.report.daily import load_daily, violation_changes
from tasks.report.daily_formats import daily_files
from tasks.report.formatting import fingerprint, pct
from tasks.report.manifest import manifest_bytes
from tasks.report.model import ReportBundle
from tasks.report.output import (
    ReportConflict,
    ReportError,
    report_directory,
    stamp,
    write_files,
)
from tasks.report.period import load_period
from tasks.report.period_formats import period_files

__all__ = [
    "ReportBundle",
    "ReportConflict",
    "ReportError",
    "violation_changes",
    "write_daily_report",
    "write_period_report",
]


def _run_suffix(run_id: str) -> str:
    """Short, stable tag of the run, so two runs started in the same second never collide."""
    tail = run_id.rsplit("-", 1)[-1]
    if re.fullmatch(r"[0-9a-f]{8}", tail):
        return tail
    return sha256_hex(run_id)[:8]


def _by_format(directory: Path, names: list[str]) -> dict[str, Path]:
    """Files by what follows the base name: `md`, `csv`, … and `members.csv`."""
    return {name.split(".", 1)[-1]: directory / name for name in names}


def write_daily_report(
    conn: duckdb.DuckDBPyConnection, run_id: str, reports_dir: str | Path
) -> ReportBundle:
    """Write the daily report of one run (any status) and its manifest."""
    report = load_daily(conn, run_id)
    run = report.run
    base = f"daily-{stamp(run.started_at)}-{_run_suffix(run.run_id)}"
    files = daily_files(report, base)
    manifest_name = f"{base}.manifest.json"
    manifest = manifest_bytes(
        "daily",
        run.workspace,
        files,
        run_id=run.run_id,
        run_hash=run.run_hash,
        emulated=run.emulated,
        extra={
            "status": report.status,
            "signing_key_fingerprint": fingerprint(run.signing_key_id),
            "signature": run.signature,
        },
    )
    summary = (
        f"**{run.workspace}** {report.status}: compliance {pct(report.compliance_pct)}, "
        f"{report.counts.members} members, {report.counts.violations} without 2SV "
        f"({len(report.opened)} new, {len(report.resolved)} resolved), run `{run.run_id}`"
    )
    directory = report_directory(reports_dir, report.day, run.workspace)
    bundle = _write_bundle(
        directory, files, manifest_name, manifest, report.status, summary, run.emulated
    )
    return dataclasses.replace(
        bundle,
        compliance_pct=report.compliance_pct,
        violation_changes=(report.opened, report.resolved),
    )


def write_period_report(
    conn: duckdb.DuckDBPyConnection,
    workspace: str,
    start: date,
    end: date,
    reports_dir: str | Path,
) -> ReportBundle:
    """Write the audit-period report for `start`..`end` (UTC days, inclusive)."""
    report = load_period(conn, workspace, start, end)
    last = report.last_run
    # The last run covered is in the name: the same evidence rebuilds the same files, and a
    # window that gained evidence since (one that ends today) gets new files beside the old.
    covered = f"asof-{stamp(last.started_at)}-{_run_suffix(last.run_id)}" if last else "no-runs"
    base = f"audit-{start.isoformat()}_{end.isoformat()}-{covered}"
    files = period_files(report, base)
    manifest_name = f"{base}.manifest.json"
    manifest = manifest_bytes(
        "period",
        workspace,
        files,
        run_id=last.run_id if last else None,
        run_hash=last.run_hash if last else None,
        emulated=report.emulated,
        extra={
            "status": report.status,
            "signing_key_fingerprints": report.signing_keys,
            "signature": last.signature if last else None,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "run_ids": report.runs["run_id"].tolist(),
        },
    )
    summary = (
        f"**{workspace}** {start.isoformat()} to {end.isoformat()}: {report.status}, "
        f"complete evidence on {report.days_with_evidence} of {report.days_in_window} days, "
        f"{len(report.findings)} findings"
    )
    directory = report_directory(reports_dir, end, workspace)
    return _write_bundle(
        directory, files, manifest_name, manifest, report.status, summary, report.emulated
    )


def _write_bundle(
    directory: Path,
    files: dict[str, bytes],
    manifest_name: str,
    manifest: bytes,
    status: str,
    summary: str,
    emulated: bool,
) -> ReportBundle:
    """Write the files and their manifest (never overwriting) and describe what was written."""
    write_files(directory, {**files, manifest_name: manifest})
    return ReportBundle(
        directory=directory,
        files=_by_format(directory, sorted(files)),
        manifest_path=directory / manifest_name,
        status=status,
        summary_markdown=f"**EMULATOR DATA.** {summary}" if emulated else summary,
    )
