"""Flow `collect-bitbucket-2sv`: read every member's 2SV state, store it as evidence, report.

Per workspace: extract → store → assess (views) → report. Workspaces are read concurrently,
at most `max_concurrent_workspaces` at a time; the evidence file has one writer, this flow's
main thread, which stores each workspace as soon as its extraction ends.

Run it ad hoc::

    from flows.collect import collect_bitbucket_2sv
    collect_bitbucket_2sv(workspaces=["acme"], db_path="evidence.duckdb")
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.models import WorkspaceExtract
from tasks.credentials import resolve_settings
from tasks.policy import Policy, load_policy
from tasks.preflight import check_reports_dir
from tasks.steps import (
    ExtractionError,
    daily_report_task,
    emit_violation_events_task,
    extract_workspace_task,
    publish_artifacts_task,
    record_run_task,
)

FLOW_NAME = "collect-bitbucket-2sv"


@dataclass(frozen=True, slots=True)
class WorkspaceOutcome:
    workspace: str
    status: str
    run_id: str
    member_count: int
    error: str | None
    error_kind: str | None
    report_status: str | None
    report_dir: str | None


@flow(name=FLOW_NAME, task_runner=ThreadPoolTaskRunner(max_workers=16), log_prints=False)
def collect_bitbucket_2sv(
    workspaces: list[str],
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
    policy_path: str | None = None,
    secret_blocks: dict[str, str] | None = None,
    max_concurrent_workspaces: int = 4,
    retry_delay_seconds: float = 30.0,
) -> list[dict]:
    """Collect 2SV evidence for each workspace; the run ends Failed if any is incomplete.

    Args:
        workspaces: workspace slugs (or `{uuid}`s) to read.
        db_path: the evidence file (created on first use).
        reports_dir: root of the dated report folders.
        policy_path: YAML policy (exceptions, grace and SLA days); built-in default if None.
        secret_blocks: credential variable → Prefect Secret block name, e.g.
            `{"BITBUCKET_TOKEN": "bitbucket-token"}`; otherwise the environment is used.
        max_concurrent_workspaces: extractions running at once in this flow run. To bound
            API use across flow runs too, add a Prefect tag concurrency limit on the
            `bitbucket-api` tag that the extraction tasks carry.
        retry_delay_seconds: wait before re-reading a workspace after a transient fault.
    """
    logger = get_run_logger()
    policy = load_policy(policy_path)
    settings = resolve_settings(secret_blocks)
    check_reports_dir(reports_dir)
    if max_concurrent_workspaces < 1:
        raise ConfigError("max_concurrent_workspaces must be at least 1.")
    flow_run_id = str(get_run_context().flow_run.id)

    outcomes = [
        store_and_report(extract, db_path, reports_dir, policy, flow_run_id)
        for extract in extractions(
            settings, workspaces, max_concurrent_workspaces, retry_delay_seconds
        )
    ]
    for outcome in outcomes:
        logger.info("%s: %s, %d members", outcome.workspace, outcome.status, outcome.member_count)

    results = sorted((asdict(o) for o in outcomes), key=lambda o: o["workspace"])
    not_complete = [o for o in results if o["status"] != "complete"]
    if not_complete:
        reasons = "; ".join(f"{o['workspace']}: {o['status']} ({o['error']})" for o in not_complete)
        return Failed(message=f"Not every workspace was read whole. {reasons}", data=results)
    return results


def extractions(
    settings: BitbucketSettings, workspaces: list[str], limit: int, retry_delay_seconds: float
) -> Iterator[WorkspaceExtract]:
    """Each workspace's extraction as it finishes, at most `limit` running at once.

    A sliding window: a slot is refilled as soon as one extraction ends, while the caller
    stores the finished one on this thread (the evidence file's one writer).
    """
    extract_task = extract_workspace_task.with_options(retry_delay_seconds=retry_delay_seconds)
    pending = iter(dict.fromkeys(workspaces))
    running: dict[PrefectFuture, str] = {}

    def start_next() -> None:
        workspace = next(pending, None)
        if workspace is not None:
            running[extract_task.submit(settings, workspace)] = workspace

    for _ in range(limit):
        start_next()
    while running:
        future = next(as_completed(list(running)))
        workspace = running.pop(future)
        start_next()
        yield finished_extract(future, workspace)


def store_and_report(
    extract: WorkspaceExtract, db_path: str, reports_dir: str, policy: Policy, flow_run_id: str
) -> WorkspaceOutcome:
    """Store the run (whatever its status), write its daily report, announce what changed."""
    stored = record_run_task(extract, db_path, policy, flow_run_id)
    bundle = daily_report_task(stored, db_path, reports_dir)
    if stored.status == "complete":
        emit_violation_events_task(stored, db_path)
    publish_artifacts_task(stored, bundle)
    return WorkspaceOutcome(
        workspace=stored.workspace,
        status=stored.status,
        run_id=stored.run_id,
        member_count=stored.member_count,
        error=extract.error,
        error_kind=extract.error_kind,
        report_status=bundle.status,
        report_dir=str(bundle.directory),
    )


def finished_extract(future: PrefectFuture, workspace: str) -> WorkspaceExtract:
    """The extraction's result, or the attempt carried by its failure, or a failed placeholder.

    Whatever happened, something is stored: a gap in the evidence must be on the record.
    """
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, WorkspaceExtract):
        return outcome
    if isinstance(outcome, ExtractionError):
        return outcome.extract
    now = datetime.now(UTC)
    return WorkspaceExtract(
        workspace=workspace,
        source="",
        started_at=now,
        finished_at=now,
        status="failed",
        error=f"extraction crashed: {type(outcome).__name__}: {outcome}",
        error_kind="crash",
    )
