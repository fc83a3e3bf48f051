"""The collection's steps as Prefect tasks: the plain functions of tasks/step_functions.py,
named and wrapped.

The business logic lives in `tasks.bitbucket`, `tasks.evidence` and `tasks.report`, and the
steps themselves in `tasks.step_functions` (which `bb2sv collect` runs without Prefect when
no Prefect API is configured); these wrappers only add what Prefect is good at: names, a
request budget shared by every run of the API, artifacts and events. Retrying a workspace
is the flow's decision (flows/attempts.py), not a Prefect task retry, so that every attempt
is stored before the next one starts. Tests call the plain functions, or a task's `.fn`.
"""

from __future__ import annotations

import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.models import WorkspaceExtract
from tasks.events import emit_bounded, member_event
from tasks.evidence import spool
from tasks.evidence.run_record import RunRecord
from tasks.evidence.store import EvidenceStore
from tasks.report import ReportBundle, violation_changes
from tasks.shared_budget import pacer_for_run
from tasks.step_functions import (
    Attempt,
    Destination,
    daily_report,
    extract_attempt,
    extract_directory_once,
    period_report,
    record_attempt,
    replay_spool,
)

__all__ = [
    "TASK_FOR_STEP",
    "Attempt",
    "artifact_key",
    "daily_report_task",
    "emit_violation_events_task",
    "extract_directory_task",
    "extract_workspace_task",
    "period_report_task",
    "publish_artifacts_task",
    "record_run_task",
    "replay_spool_task",
]


@task(
    name="extract-workspace",
    task_run_name="extract-{attempt.workspace}-{attempt.number}",
    cache_policy=NO_CACHE,  # inputs hold credentials: never hash or persist them
    persist_result=False,
)
def extract_workspace_task(settings: BitbucketSettings, attempt: Attempt) -> WorkspaceExtract:
    """`extract_attempt`, paced by the budget every run against this Prefect API shares."""
    return extract_attempt(settings, attempt, pacer_for_run(settings))


@task(
    name="extract-directory",
    task_run_name="extract-directory-{settings.org_id}",
    cache_policy=NO_CACHE,  # inputs hold the Admin API key: never hash or persist them
    persist_result=False,
)
def extract_directory_task(settings: DirectorySettings) -> DirectoryExtract:
    """`extract_directory_once`, paced by the budget shared through the Prefect API."""
    return extract_directory_once(settings, pacer_for_run(settings.http))


@task(name="record-run", task_run_name="record-{extract.workspace}", cache_policy=NO_CACHE)
def record_run_task(extract: WorkspaceExtract, to: Destination) -> spool.StoreResult:
    """`record_attempt`, each anchor line also published as an artifact."""
    return record_attempt(extract, to, witness=publish_anchor_artifact)


@task(name="store-spooled-runs", cache_policy=NO_CACHE)
def replay_spool_task(to: Destination) -> list[spool.StoreResult]:
    """`replay_spool`, each anchor line also published as an artifact."""
    return replay_spool(to, witness=publish_anchor_artifact)


def publish_anchor_artifact(record: RunRecord, line: str) -> None:
    """The anchor line, byte for byte, as the workspace's `bb2sv-anchor-<workspace>` artifact:
    the Prefect server becomes a second witness that whoever edits the log cannot rewrite.
    Published here, right after the append, so a failing report cannot keep it back; only in
    a Prefect run (outside one there is no API to witness it)."""
    if TaskRunContext.get() is None and FlowRunContext.get() is None:
        return
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", line)), default=0))
    create_markdown_artifact(
        # Only the line itself carries values (inside the fence): nothing else to escape.
        markdown=(
            f"Anchor line of the run at seq {record.seq}, as appended to the anchor log:"
            f"\n\n{fence}json\n{line}\n{fence}\n"
        ),
        key=artifact_key("bb2sv-anchor", record.workspace),
        description=f"Anchor line of the newest run of {record.workspace}",
    )


daily_report_task = task(
    name="write-daily-report", task_run_name="report-{stored.workspace}", cache_policy=NO_CACHE
)(daily_report)


period_report_task = task(
    name="write-period-report", task_run_name="audit-{workspace}", cache_policy=NO_CACHE
)(period_report)


@dataclass(frozen=True, slots=True)
class ViolationEvents:
    opened: int
    resolved: int
    not_sent: int = 0


@task(name="emit-violation-events", cache_policy=NO_CACHE)
def emit_violation_events_task(
    stored: RunRecord, db_path: str, bundle: ReportBundle | None = None
) -> ViolationEvents:
    """One bounded Prefect event per member whose violation opened or closed since the last
    complete run (tasks/events.py). Automations (Slack, e-mail, PagerDuty) trigger on them.
    The changes come from the run's daily report (`bundle`) when it was written, else from
    the evidence file."""
    if bundle is not None and bundle.violation_changes is not None:
        opened, resolved = bundle.violation_changes
    else:
        with EvidenceStore.open(db_path, read_only=True) as store:
            opened, resolved = violation_changes(store.conn, stored.run_id)
    not_sent = 0
    for change, frame in (("opened", opened), ("resolved", resolved)):
        for member in frame.to_dict("records"):
            event, resource, payload, related = member_event(
                change, stored.workspace, member, stored.run_id
            )
            not_sent += not emit_bounded(event, resource, payload, related)
    return ViolationEvents(opened=len(opened), resolved=len(resolved), not_sent=not_sent)


def artifact_key(prefix: str, workspace: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{workspace}".lower()).strip("-")


@task(name="publish-artifacts", task_run_name="artifacts-{stored.workspace}", cache_policy=NO_CACHE)
def publish_artifacts_task(stored: RunRecord, bundle: ReportBundle | None) -> None:
    """A summary with links to the report files, and one table row for the run: never the
    members themselves (they are in the report files and the evidence file)."""
    files = {} if bundle is None else bundle.files
    links = "\n".join(
        f"- {kind}: [{path.name}]({path.resolve().as_uri()})" for kind, path in files.items()
    )
    summary = bundle.summary_markdown if bundle else f"Run {stored.run_id}: {stored.status}"
    row = {
        "workspace": stored.workspace,
        "status": stored.status,
        "report_status": bundle.status if bundle else "not written",
        "members": stored.member_count,
        "run_id": stored.run_id,
        "run_hash": stored.run_hash,
        "signing_key_id": stored.signing_key_id or "",
        "report_dir": str(bundle.directory) if bundle else "",
    }
    # Each is one request that mostly waits for the API to store it: sent side by side, in
    # this task run's context (which names the task and flow run they belong to).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bb2sv-artifacts") as pool:
        sent = [
            pool.submit(
                contextvars.copy_context().run,
                create_markdown_artifact,
                markdown=f"{summary}\n\n### Files\n{links}\n",
                key=artifact_key("bb2sv-daily", stored.workspace),
                description=f"2SV compliance for {stored.workspace}",
            ),
            pool.submit(
                contextvars.copy_context().run,
                create_table_artifact,
                table=[row],
                key=artifact_key("bb2sv-run", stored.workspace),
                description="Evidence run recorded for this workspace",
            ),
        ]
        for request in sent:
            request.result()  # a failure fails the task, as it did when sent one by one


# Each step of the collection (tasks/step_functions.py) and the task that runs it in a
# Prefect flow run: flows/collection.py names the plain function, the engine picks.
TASK_FOR_STEP = {
    extract_attempt: extract_workspace_task,
    extract_directory_once: extract_directory_task,
    record_attempt: record_run_task,
    replay_spool: replay_spool_task,
    daily_report: daily_report_task,
}
