"""Flow `bitbucket-2sv-audit-report`: the audit-period report, from the evidence file alone.

With no dates it covers the calendar month before the run's *scheduled* start, in UTC: the
monthly deployment's run of 1 March 00:30 UTC reports February wherever the worker is and
however late it starts. Give both dates or neither; a window is at most 3 years. One
workspace's failure is reported and the others are still written; the run then ends Failed
with an `AuditIncomplete` exception naming each failure::

    from flows.audit_report import bitbucket_2sv_audit_report
    outcomes = bitbucket_2sv_audit_report(workspaces=["acme"], start="2026-10-01",
                                          end="2026-10-31")
    outcomes[0].files["html"]
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.outcomes import AuditIncomplete, AuditOutcome
from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import as_utc
from tasks.evidence.store import EvidenceStore
from tasks.period import check_window, previous_month
from tasks.steps import artifact_key, period_report_task
from tasks.workspaces import check_workspaces

FLOW_NAME = "bitbucket-2sv-audit-report"


@flow(name=FLOW_NAME, log_prints=False, timeout_seconds=3600)
def bitbucket_2sv_audit_report(
    workspaces: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
) -> list[AuditOutcome]:
    """Write the audit-period report for each workspace (all in the evidence file if None)."""
    logger = get_run_logger()
    start, end = audit_window(start, end)
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
            outcomes.append(audit_one(workspace, start, end, db_path, reports_dir))
        except Exception as exc:  # one workspace's report never costs the others theirs
            failures[workspace] = str(exc) or type(exc).__name__
            logger.error("%s: the audit report failed: %s", workspace, exc)
    if failures:
        failure = AuditIncomplete(outcomes, failures)
        return Failed(message=str(failure), data=failure)
    return outcomes


def audit_window(start: date | None, end: date | None) -> tuple[date, date]:
    """The window to report: both dates as given, or the month before the scheduled start."""
    if (start is None) != (end is None):
        given, missing = ("start", "end") if end is None else ("end", "start")
        raise ConfigError(
            f"The audit window has a {given} but no {missing}: give both dates, or neither "
            "for the calendar month before the run's scheduled start (UTC)."
        )
    if start is None or end is None:
        # A plain date: Prefect's DateTime subclass would carry its own semantics along.
        scheduled = date.fromordinal(as_utc(flow_run.scheduled_start_time).toordinal())
        start, end = previous_month(scheduled)
    check_window(start, end)
    return start, end


def audit_one(
    workspace: str, start: date, end: date, db_path: str, reports_dir: str
) -> AuditOutcome:
    bundle = period_report_task(workspace, start, end, db_path, reports_dir)
    create_markdown_artifact(
        markdown=bundle.summary_markdown,
        key=artifact_key("bb2sv-audit", workspace),
        description=f"2SV audit period {start}..{end} for {workspace}",
    )
    get_run_logger().info("%s: %s → %s", workspace, bundle.status, bundle.directory)
    return AuditOutcome(
        workspace=workspace,
        status=bundle.status,
        directory=str(bundle.directory),
        files={kind: str(path) for kind, path in bundle.files.items()},
    )
