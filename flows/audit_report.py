"""Flow `bitbucket-2sv-audit-report`: the audit-period report, from the evidence file alone.

With no dates it covers the calendar month before the run's *scheduled* start, in UTC: the
monthly deployment's run of 1 March 07:00 UTC reports February wherever the worker is and
however late it starts. Give both dates or neither; a window is at most 3 years. One
workspace's failure is reported and the others are still written; the run then ends Failed
with an `AuditIncomplete` exception naming each failure::

    from flows.audit_report import bitbucket_2sv_audit_report
    outcomes = bitbucket_2sv_audit_report(workspaces=["acme"], start="2026-10-01",
                                          end="2026-10-31")
    outcomes[0].files["html"]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.audit import write_audit_reports
from flows.outcomes import AuditIncomplete, AuditOutcome
from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import as_utc
from tasks.period import check_window, previous_month
from tasks.report import ReportBundle
from tasks.steps import artifact_key, period_report_task

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
    start, end = audit_window(start, end)
    outcomes, failures = write_audit_reports(
        workspaces, start, end, db_path, reports_dir,
        write=period_report_task, publish=publish_summary(start, end), logger=get_run_logger(),
    )  # fmt: skip
    if failures:
        failure = AuditIncomplete(outcomes, failures)
        return Failed(message=str(failure), data=failure)
    return outcomes


def publish_summary(start: date, end: date) -> Callable[[str, ReportBundle], None]:
    def publish(workspace: str, bundle: ReportBundle) -> None:
        create_markdown_artifact(
            markdown=bundle.summary_markdown,
            key=artifact_key("bb2sv-audit", workspace),
            description=f"2SV audit period {start}..{end} for {workspace}",
        )

    return publish


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
