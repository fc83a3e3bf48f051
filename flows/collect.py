"""Flow `collect-bitbucket-2sv`: read every member's 2SV state, store it as evidence, report.

Per workspace: extract → store → assess (views) → report. Workspaces are read concurrently,
at most `max_concurrent_workspaces` at a time; the evidence file has one writer, this flow's
main thread, which stores each attempt as soon as it ends. When the organization directory
is configured it is read once, beside the workspaces, and stored with every workspace's run.
Unattended operation:

- a workspace worth reading again is read again (flows/attempts.py), each attempt stored
  as its own run first, so every request the API saw is on record;
- a failure of one workspace in any step (extract, store, report, events, artifacts) is
  recorded in its outcome and never costs another workspace its evidence; an attempt the
  evidence file cannot take is spooled beside it and stored first by the next collection;
- SIGTERM, SIGINT, a Prefect cancellation (a SIGTERM from the worker) or the time limit
  stop it: the attempts in flight are stored as `failed` runs naming the signal, nothing
  new starts, and the run ends Failed (Cancelled, for a cancellation);
- it ends Failed, with a `CollectionIncomplete` exception carrying the outcomes, unless every
  workspace is complete and recorded; one summary event says how it went.

Run it ad hoc::

    from flows.collect import collect_bitbucket_2sv
    outcomes = collect_bitbucket_2sv(workspaces=["acme"], db_path="evidence.duckdb")
    outcomes[0].status, outcomes[0].report_dir
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows.attempts import AttemptPlan
from flows.outcomes import CollectionIncomplete, WorkspaceOutcome
from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import is_emulator_url
from tasks.bitbucket.models import WorkspaceExtract
from tasks.events import emit_bounded, summary_event
from tasks.evidence.spool import StoreResult, spooled_runs
from tasks.preflight import CollectionSetup, preflight
from tasks.signals import STOP, stop_after, stop_on_signals
from tasks.steps import (
    Attempt,
    daily_report_task,
    emit_violation_events_task,
    extract_directory_task,
    extract_workspace_task,
    publish_artifacts_task,
    record_run_task,
    replay_spool_task,
)
from tasks.vocabulary import ErrorKind, RunStatus
from tasks.workspaces import MAX_WORKSPACES

FLOW_NAME = "collect-bitbucket-2sv"
MAX_TIME_LIMIT_S = 5 * 3600.0
# Prefect's own timeout raises wherever the main thread is, even inside a store: only a
# backstop behind `time_limit_seconds`, which stops the collection cleanly.
BACKSTOP_TIMEOUT_S = MAX_TIME_LIMIT_S + 3600.0

Item = TypeVar("Item")
Handle = TypeVar("Handle")


@flow(
    name=FLOW_NAME,
    task_runner=ThreadPoolTaskRunner(max_workers=16),
    log_prints=False,
    timeout_seconds=BACKSTOP_TIMEOUT_S,
)
def collect_bitbucket_2sv(
    workspaces: Annotated[list[str], Field(min_length=1, max_length=MAX_WORKSPACES)],
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
    policy_path: str | None = None,
    secret_blocks: dict[str, str] | None = None,
    max_concurrent_workspaces: Annotated[int, Field(ge=1, le=32)] = 4,
    retry_delay_seconds: Annotated[float, Field(ge=0, le=600)] = 10.0,
    attempts: Annotated[int, Field(ge=1, le=10)] = 3,
    give_up_after_seconds: Annotated[float, Field(gt=0, le=86_400)] = 180.0,
    time_limit_seconds: Annotated[float, Field(gt=0, le=MAX_TIME_LIMIT_S)] = 3600.0,
    anchor_log: str | None = None,
) -> list[WorkspaceOutcome]:
    """Collect 2SV evidence for each workspace; the run ends Failed if any is not recorded whole.

    Args:
        workspaces: workspace slugs (or `{uuid}`s) to read.
        db_path: the evidence file (created on first use), relative to the working directory
            (a deployment's data directory).
        reports_dir: root of the dated report folders.
        policy_path: YAML policy (exceptions, grace and SLA days); built-in default if None.
        secret_blocks: credential variable → Prefect Secret block name, e.g.
            `{"BITBUCKET_TOKEN": "bitbucket-token", "ATLASSIAN_ADMIN_API_KEY": "org-key"}`;
            otherwise the environment is used.
        max_concurrent_workspaces: extractions running at once in this flow run.
        retry_delay_seconds: wait before reading a workspace again after a transient fault.
        attempts: reads of one workspace at most (1 = never read again).
        give_up_after_seconds: a workspace that keeps failing this long, across its
            attempts, is given up.
        time_limit_seconds: the collection stops cleanly (attempts in flight stored as
            failed runs) if it is still running after this.
        anchor_log: where each stored run's hash is appended (default
            `<reports_dir>/anchors.jsonl`); keep it where the file's editors cannot rewrite it.
    """
    logger = get_run_logger()
    show_bb2sv_logs()
    setup = preflight(
        db_path, reports_dir, policy_path, secret_blocks, max_concurrent_workspaces, anchor_log,
        workspaces,
    )  # fmt: skip
    flow_run_id = str(get_run_context().flow_run.id)
    plan = AttemptPlan(attempts, retry_delay_seconds, give_up_after_seconds)
    STOP.clear()  # a new collection: an earlier one's stop in this process is history
    limit = f"the flow's {time_limit_seconds:g} s time limit (time_limit_seconds)"
    with stop_on_signals(), stop_after(time_limit_seconds, limit):
        if spooled_runs(db_path):
            replayed = replay_spool_task(db_path, setup.signer, setup.anchor_log)
            logger.info("stored %d attempt(s) an earlier collection had spooled", len(replayed))
            for unanchored in (result.reason for result in replayed if result.reason):
                logger.error("%s", unanchored)
        directory = directory_read(setup.directory)
        outcomes, not_started = collect_all(
            setup, db_path, reports_dir, flow_run_id, max_concurrent_workspaces, plan, directory
        )
        read = directory()
    stopped_by = STOP.reason
    outcomes.sort(key=lambda outcome: outcome.workspace)
    for outcome in outcomes:
        logger.info("%s: %s, %d members", outcome.workspace, outcome.status, outcome.member_count)
    emit_bounded(*summary_event(flow_run_id, outcomes, stopped_by))

    directory_problem = None
    if read is not None and read.status != RunStatus.COMPLETE:
        directory_problem = f"{read.status}: {read.error}"
    whole = all(o.clean for o in outcomes) and directory_problem is None
    if stopped_by is None and not not_started and whole:
        return outcomes
    failure = CollectionIncomplete(outcomes, stopped_by, tuple(not_started), directory_problem)
    if stopped_by is not None and being_cancelled(flow_run_id):
        # The worker's SIGTERM of a Prefect cancellation: end as the cancellation it is
        # (the API would refuse Failed for a cancelling run).
        return Cancelled(message=str(failure), data=failure)
    return Failed(message=str(failure), data=failure)


def being_cancelled(flow_run_id: str) -> bool:
    """Whether Prefect is cancelling this flow run (its API state is Cancelling)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except Exception:  # no API to ask: not a cancellation Prefect is waiting for
        return False
    return state is not None and state.is_cancelling()


def show_bb2sv_logs() -> None:
    """PREFECT_LOGGING_EXTRA_LOGGERS=bb2sv gives the `bb2sv.*` loggers Prefect's handlers but
    no level, so their INFO lines (what was read, stored, retried) would stop at the root's
    WARNING; give them INFO unless someone chose a level."""
    bb2sv_logger = logging.getLogger("bb2sv")
    if bb2sv_logger.level == logging.NOTSET:
        bb2sv_logger.setLevel(logging.INFO)


def directory_read(settings: DirectorySettings | None) -> Callable[[], DirectoryExtract | None]:
    """Start reading the organization directory (None: not configured) beside the workspaces;
    the function returned waits for it the first time and then returns the same read."""
    if settings is None:
        return lambda: None
    future = extract_directory_task.submit(settings)
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


def collect_all(
    setup: CollectionSetup,
    db_path: str,
    reports_dir: str,
    flow_run_id: str,
    limit: int,
    plan: AttemptPlan,
    directory: Callable[[], DirectoryExtract | None] = lambda: None,
) -> tuple[list[WorkspaceOutcome], list[str]]:
    """(one outcome per finished workspace, the workspaces a stop kept from starting). Every
    attempt is stored with the collection's directory read."""
    queue: deque[Attempt] = deque(Attempt(workspace) for workspace in setup.workspaces)
    outcomes: list[WorkspaceOutcome] = []
    problems: dict[str, list[str]] = {}  # what went wrong with earlier attempts' steps
    finished = sliding_window(
        queue,
        limit,
        start=lambda attempt: extract_workspace_task.submit(setup.settings, attempt),
        next_done=lambda running: next(as_completed(running)),
        more=lambda: not STOP.requested,
    )
    for attempt, future in finished:
        extract = finished_extract(future, attempt.workspace, setup.settings.api_url)
        again = plan.next(attempt, extract, now=time.monotonic())
        extract = plan.describe(attempt, extract, again)
        noted = problems.setdefault(attempt.workspace, [])
        stored_with = Storing(db_path, setup, flow_run_id, directory())
        if again is not None:
            # Stored before the next read starts: a retry never discards what the API saw.
            store(extract, attempt.number, noted, stored_with)
            queue.append(again)
            continue
        outcomes.append(store_and_report(extract, attempt.number, noted, stored_with, reports_dir))
    return outcomes, list(dict.fromkeys(attempt.workspace for attempt in queue))


def sliding_window(
    items: Iterable[Item],
    limit: int,
    *,
    start: Callable[[Item], Handle],
    next_done: Callable[[list[Handle]], Handle],
    more: Callable[[], bool] = lambda: True,
) -> Iterator[tuple[Item, Handle]]:
    """(item, handle) as each started item finishes, never more than `limit` started at once.

    A slot is refilled as soon as one item finishes, while the caller handles the finished
    one on its own thread (for the collection: the evidence file's one writer). `items` may
    be a deque the caller appends to (a retry); nothing more starts once `more()` is False.
    """
    pending = items if isinstance(items, deque) else deque(items)
    running: dict[Handle, Item] = {}

    def fill() -> None:
        while pending and len(running) < limit and more():
            item = pending.popleft()
            running[start(item)] = item

    fill()
    while running:
        handle = next_done(list(running))
        item = running.pop(handle)
        fill()
        yield item, handle
        fill()  # the caller may have queued a retry


def step(name: str, problems: list[str], task: Callable[..., Any], *args: Any) -> Any:
    """Run one step; if it fails, say so in `problems` and go on (None): one workspace's
    report or event must never cost another workspace its evidence."""
    try:
        return task(*args)
    except Exception as exc:
        problems.append(f"{name} failed: {str(exc) or type(exc).__name__}")
        get_run_logger().error("%s failed: %s", name, exc)
        return None


@dataclass(frozen=True, slots=True)
class Storing:
    """Where and with what every attempt of this collection is stored, signed and anchored."""

    db_path: str
    setup: CollectionSetup
    flow_run_id: str
    directory: DirectoryExtract | None


def store(
    extract: WorkspaceExtract, number: int, problems: list[str], storing: Storing
) -> StoreResult | None:
    """Store (sign, anchor) one attempt; if the evidence file could not take it, or the anchor
    log could not be written, say so in `problems`."""
    setup = storing.setup
    result = step(
        "store", problems, record_run_task, extract, storing.db_path, setup.policy,
        storing.flow_run_id, storing.directory, setup.signer, setup.anchor_log,
    )  # fmt: skip
    if result is not None and result.record is None:
        problems.append(f"attempt {number} not stored: {result.reason}")
    elif result is not None and result.reason:
        problems.append(f"attempt {number}: {result.reason}")
    return result


def store_and_report(
    extract: WorkspaceExtract,
    attempts: int,
    problems: list[str],
    storing: Storing,
    reports_dir: str,
) -> WorkspaceOutcome:
    """Store the last attempt (whatever its status) with the collection's directory read,
    write its daily report, announce what changed. `problems` holds what already went wrong
    for the workspace.

    After a stop only the store happens: the evidence first, and the stop promptly.
    """
    db_path, directory = storing.db_path, storing.directory
    result = store(extract, attempts, problems, storing)
    stored = None if result is None else result.record
    if stored is None:
        return WorkspaceOutcome(
            workspace=extract.workspace,
            status=RunStatus(extract.status),
            run_id="",
            run_hash="",
            member_count=0,
            error=extract.error,
            error_kind=extract.error_kind,
            report_status=None,
            report_dir=None,
            attempts=attempts,
            problems=tuple(problems),
            spooled=None if result is None else str(result.spooled),
            directory_status=None if directory is None else RunStatus(directory.status),
            directory_error=None if directory is None else directory.error,
            directory_error_kind=None if directory is None else directory.error_kind,
        )
    bundle = None
    if not STOP.requested:
        bundle = step("daily report", problems, daily_report_task, stored, db_path, reports_dir)
        if stored.status == RunStatus.COMPLETE:
            step("violation events", problems, emit_violation_events_task, stored, db_path)
        step("artifacts", problems, publish_artifacts_task, stored, bundle)
    return WorkspaceOutcome(
        workspace=stored.workspace,
        status=stored.status,
        run_id=stored.run_id,
        run_hash=stored.run_hash,
        member_count=stored.member_count,
        error=stored.error,
        error_kind=stored.error_kind,
        report_status=None if bundle is None else bundle.status,
        report_dir=None if bundle is None else str(bundle.directory),
        attempts=attempts,
        problems=tuple(problems),
        compliance_pct=None if bundle is None else bundle.compliance_pct,
        directory_status=stored.directory_status,
        directory_error=stored.directory_error,
        directory_error_kind=None if directory is None else directory.error_kind,
    )


def finished_extract(future: PrefectFuture, workspace: str, source: str) -> WorkspaceExtract:
    """The extraction's result, or a failed placeholder if the extraction itself crashed.

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
    """The task's extract, or `crashed(what, now)` when the task itself raised (a bug)."""
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, kind):
        return outcome
    return crashed(f"{type(outcome).__name__}: {outcome}", datetime.now(UTC))
