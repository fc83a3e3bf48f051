"""Flow `collect-bitbucket-2sv`: read every member's 2SV state, store it as evidence, report.

The collection itself is flows/collection.py (`run_collection`); this flow runs its steps
as Prefect tasks (`PrefectEngine`), adds the events and artifacts that need a Prefect API,
and turns the result into the run's final state: Failed, with a `CollectionIncomplete`
carrying the outcomes, unless every workspace is complete and recorded; Cancelled when a
Prefect cancellation (the worker's SIGTERM) stopped it. Deployments run this flow;
`bb2sv collect` runs it when a Prefect API is configured (without one it runs the same
steps in-process, flows/local.py).

Run it ad hoc::

    from flows.collect import collect_bitbucket_2sv
    outcomes = collect_bitbucket_2sv(workspaces=["acme"], db_path="evidence.duckdb")
    outcomes[0].status, outcomes[0].report_dir
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import as_completed
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.collection import (
    MAX_TIME_LIMIT_S,
    Attempts,
    CollectionOptions,
    ConcurrentWorkspaces,
    GiveUpAfter,
    RetryDelay,
    TimeLimit,
    Workspaces,
    run_collection,
)
from flows.outcomes import Collection, WorkspaceOutcome
from tasks.events import emit_bounded, summary_event
from tasks.evidence.run_record import RunRecord
from tasks.report import ReportBundle
from tasks.steps import TASK_FOR_STEP, emit_violation_events_task, publish_artifacts_task
from tasks.vocabulary import RunStatus

FLOW_NAME = "collect-bitbucket-2sv"
# Prefect's own timeout raises wherever the main thread is, even inside a store: only a
# backstop behind `time_limit_seconds`, which stops the collection cleanly.
BACKSTOP_TIMEOUT_S = MAX_TIME_LIMIT_S + 3600.0


@flow(
    name=FLOW_NAME,
    task_runner=ThreadPoolTaskRunner(max_workers=16),
    log_prints=False,
    timeout_seconds=BACKSTOP_TIMEOUT_S,
)
def collect_bitbucket_2sv(
    workspaces: Workspaces,
    db_path: str = "evidence.duckdb",
    reports_dir: str = "reports",
    policy_path: str | None = None,
    secret_blocks: dict[str, str] | None = None,
    max_concurrent_workspaces: ConcurrentWorkspaces = 4,
    retry_delay_seconds: RetryDelay = 10.0,
    attempts: Attempts = 3,
    give_up_after_seconds: GiveUpAfter = 180.0,
    time_limit_seconds: TimeLimit = 3600.0,
    anchor_log: str | None = None,
) -> list[WorkspaceOutcome]:
    """Collect 2SV evidence for each workspace; the run ends Failed if any is not recorded whole.

    Args:
        workspaces: workspace slugs (or `{uuid}`s) to read.
        db_path: the evidence file (created on first use), relative to the working directory
            (a deployment's data directory).
        reports_dir: root of the dated report folders.
        policy_path: YAML policy (accepted factors, scope, SSO, exceptions, grace and SLA
            days); built-in default if None.
        secret_blocks: credential variable → Prefect Secret block name, e.g.
            `{"BITBUCKET_TOKEN": "bitbucket-token", "ATLASSIAN_ADMIN_API_KEY": "org-key"}`;
            otherwise the environment is used.
        max_concurrent_workspaces: extractions running at once in this flow run.
        retry_delay_seconds: wait before reading a workspace again after a retryable failure.
        attempts: reads of one workspace at most (1 = never read again).
        give_up_after_seconds: a workspace that keeps failing this long, across its
            attempts, is given up.
        time_limit_seconds: the collection stops cleanly (attempts in flight stored as
            failed runs) if it is still running after this.
        anchor_log: where each stored run's hash is appended (default
            `<reports_dir>/anchors.jsonl`); keep it where the file's editors cannot rewrite it.
    """
    options = CollectionOptions(
        workspaces=workspaces, db_path=db_path, reports_dir=reports_dir,
        policy_path=policy_path, secret_blocks=secret_blocks,
        max_concurrent_workspaces=max_concurrent_workspaces,
        retry_delay_seconds=retry_delay_seconds, attempts=attempts,
        give_up_after_seconds=give_up_after_seconds, time_limit_seconds=time_limit_seconds,
        anchor_log=anchor_log,
    )  # fmt: skip
    show_bb2sv_logs()
    engine = PrefectEngine()
    collection = run_collection(options, options.preflight(), engine)
    if collection.whole:
        return collection.outcomes
    failure = collection.failure()
    if collection.stopped_by is not None and being_cancelled(engine.run_id):
        # The worker's SIGTERM of a Prefect cancellation: end as the cancellation it is
        # (the API would refuse Failed for a cancelling run).
        return Cancelled(message=str(failure), data=failure)
    return Failed(message=str(failure), data=failure)


class PrefectEngine:
    """The collection's steps as tasks of the current flow run (tasks/steps.py)."""

    def __init__(self) -> None:
        self.run_id: str = str(get_run_context().flow_run.id)
        self.log = get_run_logger()

    def submit(self, step: Callable[..., Any], *args: Any) -> Any:
        return TASK_FOR_STEP[step].submit(*args)

    def next_done(self, handles: list[Any]) -> Any:
        return next(as_completed(handles))

    def outcome(self, handle: Any) -> object:
        return handle.result(raise_on_failure=False)

    def call(self, step: Callable[..., Any], *args: Any) -> Any:
        return TASK_FOR_STEP[step](*args)

    def announcements(
        self, stored: RunRecord, bundle: ReportBundle | None, db_path: str
    ) -> Sequence[tuple[str, Callable[..., Any], tuple[Any, ...]]]:
        steps: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        if stored.status == RunStatus.COMPLETE:
            steps.append(
                ("violation events", emit_violation_events_task, (stored, db_path, bundle))
            )
        steps.append(("artifacts", publish_artifacts_task, (stored, bundle)))
        return steps

    def summary(self, collection: Collection) -> None:
        emit_bounded(*summary_event(self.run_id, collection.outcomes, collection.stopped_by))


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
