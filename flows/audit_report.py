"""Flow `bitbucket-2sv-audit-report`: the audit-period report, from the evidence file alone.

With no dates it covers the previous calendar month, which is what the monthly deployment
runs on the 1st::

    from flows.audit_report import bitbucket_2sv_audit_report
    outcomes = bitbucket_2sv_audit_report(workspaces=["acme"], start="2026-10-01",
                                          end="2026-10-31")
    outcomes[0].files["html"]
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.outcomes import AuditOutcome
from tasks.evidence.store import EvidenceStore
from tasks.period import previous_month
from tasks.steps import artifact_key, period_report_task

FLOW_NAME = "bitbucket-2sv-audit-report"


@flow(name=FLOW_NAME, log_prints=False)
def bitbucket_2sv_audit_report(
    workspaces: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
) -> list[AuditOutcome]:
    """Write the audit-period report for each workspace (all in the evidence file if None)."""
    logger = get_run_logger()
    if start is None or end is None:
        start, end = previous_month(date.today())
    if workspaces is None:
        with EvidenceStore.open(db_path, read_only=True) as store:
            rows = store.conn.execute(
                "select distinct workspace from collection_runs order by workspace"
            ).fetchall()
        workspaces = [row[0] for row in rows]
    outcomes = []
    for workspace in workspaces:
        bundle = period_report_task(workspace, start, end, db_path, reports_dir)
        create_markdown_artifact(
            markdown=bundle.summary_markdown,
            key=artifact_key("bb2sv-audit", workspace),
            description=f"2SV audit period {start}..{end} for {workspace}",
        )
        logger.info("%s: %s → %s", workspace, bundle.status, bundle.directory)
        outcomes.append(
            AuditOutcome(
                workspace=workspace,
                status=bundle.status,
                directory=str(bundle.directory),
                files={kind: str(path) for kind, path in bundle.files.items()},
            )
        )
    return outcomes
