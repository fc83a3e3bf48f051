"""Flow `collect-bitbucket-2sv`: read every member's 2SV state, store it as evidence, report.

Per workspace: extract → store → assess (views) → report. Workspaces are read concurrently,
at most `max_concurrent_workspaces` at a time; the evidence file has one writer, this flow's
main thread, which stores each workspace as soon as its extraction ends. When the
organization directory is configured it is read once, beside the workspaces, and stored
with every workspace's run.

Run it ad hoc::

    from flows.collect import collect_bitbucket_2sv
    outcomes = collect_bitbucket_2sv(workspaces=["acme"], db_path="evidence.duckdb")
    outcomes[0].status, outcomes[0].report_dir
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import TypeVar

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.outcomes import WorkspaceOutcome
from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import BitbucketSettings, is_emulator_url
from tasks.bitbucket.models import WorkspaceExtract
from tasks.preflight import CollectionSetup, preflight
from tasks.steps import (
    ExtractionError,
    daily_report_task,
    emit_violation_events_task,
    extract_directory_task,
    extract_workspace_task,
    publish_artifacts_task,
    record_run_task,
)
from tasks.vocabulary import ErrorKind, RunStatus

FLOW_NAME = "collect-bitbucket-2sv"

Item = TypeVar("Item")
Handle = TypeVar("Handle")


@flow(name=FLOW_NAME, task_runner=ThreadPoolTaskRunner(max_workers=16), log_prints=False)
def collect_bitbucket_2sv(
    workspaces: list[str],
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
    policy_path: str | None = None,
    secret_blocks: dict[str, str] | None = None,
    max_concurrent_workspaces: int = 4,
    retry_delay_seconds: float = 30.0,
    anchor_log: str | None = None,
) -> list[WorkspaceOutcome]:
    """Collect 2SV evidence for each workspace; the run ends Failed if any is incomplete.

    Args:
        workspaces: workspace slugs (or `{uuid}`s) to read.
        db_path: the evidence file (created on first use).
        reports_dir: root of the dated report folders.
        policy_path: YAML policy (exceptions, grace and SLA days); built-in default if None.
        secret_blocks: credential variable → Prefect Secret block name, e.g.
            `{"BITBUCKET_TOKEN": "bitbucket-token", "ATLASSIAN_ADMIN_API_KEY": "org-key"}`;
            otherwise the environment is used.
        max_concurrent_workspaces: extractions running at once in this flow run.
        retry_delay_seconds: wait before re-reading a workspace after a transient fault.
        anchor_log: where each stored run's hash is appended (default
            `<reports_dir>/anchors.jsonl`); keep it where the file's editors cannot rewrite it.
    """
    logger = get_run_logger()
    setup = preflight(
        db_path, reports_dir, policy_path, secret_blocks, max_concurrent_workspaces, anchor_log
    )
    flow_run_id = str(get_run_context().flow_run.id)
    directory = directory_read(setup.directory, retry_delay_seconds)

    outcomes = [
        store_and_report(extract, db_path, reports_dir, setup, flow_run_id, directory())
        for extract in extractions(
            setup.settings, workspaces, max_concurrent_workspaces, retry_delay_seconds
        )
    ]
    outcomes.sort(key=lambda outcome: outcome.workspace)
    for outcome in outcomes:
        logger.info("%s: %s, %d members", outcome.workspace, outcome.status, outcome.member_count)

    problems = []
    not_complete = [outcome for outcome in outcomes if not outcome.complete]
    if not_complete:
        reasons = "; ".join(f"{o.workspace}: {o.status} ({o.error})" for o in not_complete)
        problems.append(f"Not every workspace was read whole. {reasons}")
    read = directory()
    if read is not None and read.status != RunStatus.COMPLETE:
        problems.append(
            f"The organization directory was not read whole ({read.status}): {read.error}"
        )
    if problems:
        return Failed(message=" ".join(problems), data=outcomes)
    return outcomes


def directory_read(
    settings: DirectorySettings | None, retry_delay_seconds: float
) -> Callable[[], DirectoryExtract | None]:
    """Start reading the organization directory (None: not configured) beside the workspaces;
    the function returned waits for it the first time and then returns the same read."""
    if settings is None:
        return lambda: None
    extract_task = extract_directory_task.with_options(retry_delay_seconds=retry_delay_seconds)
    future = extract_task.submit(settings)
    return cache(
        lambda: finished(
            future,
            DirectoryExtract,
            lambda error, now: DirectoryExtract(
                org_id=settings.org_id,
                source=settings.source,
                started_at=now,
                finished_at=now,
                status=RunStatus.FAILED,
                error=f"reading the directory crashed: {error}",
                error_kind=ErrorKind.CRASH,
                emulated=settings.http.emulated,
            ),
        )
    )


def extractions(
    settings: BitbucketSettings, workspaces: list[str], limit: int, retry_delay_seconds: float
) -> Iterator[WorkspaceExtract]:
    """Each workspace's extraction as it finishes, at most `limit` running at once."""
    extract_task = extract_workspace_task.with_options(retry_delay_seconds=retry_delay_seconds)
    finished = sliding_window(
        dict.fromkeys(workspaces),
        limit,
        start=lambda workspace: extract_task.submit(settings, workspace),
        next_done=lambda running: next(as_completed(running)),
    )
    for workspace, future in finished:
        yield finished_extract(future, workspace, settings.api_url)


def sliding_window(
    items: Iterable[Item],
    limit: int,
    *,
    start: Callable[[Item], Handle],
    next_done: Callable[[list[Handle]], Handle],
) -> Iterator[tuple[Item, Handle]]:
    """(item, handle) as each started item finishes, never more than `limit` started at once.

    A slot is refilled as soon as one item finishes, while the caller handles the finished
    one on its own thread (for the collection: the evidence file's one writer).
    """
    pending = iter(items)
    running: dict[Handle, Item] = {}

    def start_next() -> None:
        item = next(pending, None)
        if item is not None:
            running[start(item)] = item

    for _ in range(limit):
        start_next()
    while running:
        handle = next_done(list(running))
        item = running.pop(handle)
        start_next()
        yield item, handle


def store_and_report(
    extract: WorkspaceExtract,
    db_path: str,
    reports_dir: str,
    setup: CollectionSetup,
    flow_run_id: str,
    directory: DirectoryExtract | None = None,
) -> WorkspaceOutcome:
    """Store (and sign) the run, whatever its status, with the collection's directory read;
    anchor it outside the file; write its daily report; announce what changed."""
    stored = record_run_task(
        extract, db_path, setup.policy, flow_run_id, directory, setup.signer, setup.anchor_log
    )
    bundle = daily_report_task(stored, db_path, reports_dir)
    if stored.status == RunStatus.COMPLETE:
        emit_violation_events_task(stored, db_path)
    publish_artifacts_task(stored, bundle)
    return WorkspaceOutcome(
        workspace=stored.workspace,
        status=stored.status,
        run_id=stored.run_id,
        run_hash=stored.run_hash,
        member_count=stored.member_count,
        error=stored.error,
        error_kind=stored.error_kind,
        report_status=bundle.status,
        report_dir=str(bundle.directory),
        directory_status=stored.directory_status,
        directory_error=stored.directory_error,
        directory_error_kind=None if directory is None else directory.error_kind,
    )


def finished_extract(future: PrefectFuture, workspace: str, source: str) -> WorkspaceExtract:
    """The extraction's result, or the attempt carried by its failure, or a failed placeholder.

    Whatever happened, something is stored: a gap in the evidence must be on the record.
    """
    return finished(
        future,
        WorkspaceExtract,
        lambda error, now: WorkspaceExtract(
            workspace=workspace,
            source=source,
            started_at=now,
            finished_at=now,
            status=RunStatus.FAILED,
            error=f"extraction crashed: {error}",
            error_kind=ErrorKind.CRASH,
            emulated=is_emulator_url(source),
        ),
    )


Extract = TypeVar("Extract", WorkspaceExtract, DirectoryExtract)


def finished(
    future: PrefectFuture, kind: type[Extract], crashed: Callable[[str, datetime], Extract]
) -> Extract:
    """The task's extract, or the attempt its ExtractionError carries, or `crashed(what, now)`
    when the task itself raised something else."""
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, kind):
        return outcome
    if isinstance(outcome, ExtractionError):
        return outcome.extract
    return crashed(f"{type(outcome).__name__}: {outcome}", datetime.now(UTC))
