"""The audit-period reports of several workspaces, whichever way they run.

One workspace's failure is reported and the others are still written. The Prefect flow
(flows/audit_report.py) runs this with the report step as a task and each summary published
as an artifact; `bb2sv audit-report` without a Prefect API runs it in-process::

    outcomes, failures = write_audit_reports(["acme"], start, end, "evidence.duckdb", "reports")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from flows.outcomes import AuditOutcome
from tasks.evidence.store import EvidenceStore
from tasks.report import ReportBundle
from tasks.step_functions import period_report
from tasks.workspaces import check_workspaces

__all__ = ["write_audit_reports"]

log = logging.getLogger("bb2sv.audit")


def write_audit_reports(
    workspaces: list[str] | None,
    start: date,
    end: date,
    db_path: str,
    reports_dir: str,
    *,
    write: Callable[..., ReportBundle] = period_report,
    publish: Callable[[str, ReportBundle], None] = lambda workspace, bundle: None,
    logger: Any = log,
) -> tuple[list[AuditOutcome], dict[str, str]]:
    """(an outcome per report written, why each other workspace has none). `workspaces`
    None: every workspace in the evidence file. `write` writes one workspace's report,
    `publish` tells others of it."""
    if workspaces is None:
        with EvidenceStore.open(db_path, read_only=True) as store:
            rows = store.conn.execute(
                "select distinct workspace from collection_runs order by workspace"
            ).fetchall()
        workspaces = [row[0] for row in rows]
    else:
        workspaces = check_workspaces(workspaces)
    outcomes: list[AuditOutcome] = []
    failures: dict[str, str] = {}
    for workspace in workspaces:
        try:
            bundle = write(workspace, start, end, db_path, reports_dir)
            publish(workspace, bundle)
        except Exception as exc:  # one workspace's report never costs the others theirs
            failures[workspace] = str(exc) or type(exc).__name__
            logger.error("%s: the audit report failed: %s", workspace, exc)
            continue
        logger.info("%s: %s → %s", workspace, bundle.status, bundle.directory)
        outcomes.append(
            AuditOutcome(
                workspace=workspace,
                status=bundle.status,
                directory=str(bundle.directory),
                files={kind: str(path) for kind, path in bundle.files.items()},
            )
        )
    return outcomes, failures
