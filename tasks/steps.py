"""Thin Prefect task wrappers around the plain functions of each step.

The business logic lives in `tasks.bitbucket`, `tasks.evidence` and `tasks.report`; these
wrappers only add what Prefect is good at: names, retries for transient faults, artifacts and
events. Tests call the plain functions, or a task's `.fn` where Prefect adds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TypeVar

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event

from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.extract import extract_directory
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.bitbucket.models import WorkspaceExtract
from tasks.evidence.anchors import append_anchor
from tasks.evidence.keys import RunSigner
from tasks.evidence.run_record import RunRecord
from tasks.evidence.store import EvidenceStore
from tasks.policy import Policy
from tasks.report import ReportBundle, violation_changes, write_daily_report, write_period_report
from tasks.vocabulary import RunStatus


class ExtractionError(RuntimeError):
    """A workspace (or the organization directory) could not be read whole; carries the
    attempt so the gap is still stored."""

    def __init__(self, extract: WorkspaceExtract | DirectoryExtract) -> None:
        super().__init__(extract.error or f"{extract.label}: {extract.status}")
        self.extract = extract


class TransientExtractionError(ExtractionError):
    """Worth another attempt: Prefect retries the task for this one only."""


def retry_only_transient(task, task_run, state) -> bool:  # noqa: ARG001 (Prefect's signature)
    """`retry_condition_fn`: auth, permission and not-found failures are final at once."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:
        return False
    return isinstance(exc, TransientExtractionError)


@task(
    name="extract-workspace",
    task_run_name="extract-{workspace}",
    retries=2,
    retry_delay_seconds=30,
    retry_condition_fn=retry_only_transient,
    cache_policy=NO_CACHE,  # inputs hold credentials: never hash or persist them
    persist_result=False,
)
def extract_workspace_task(settings: BitbucketSettings, workspace: str) -> WorkspaceExtract:
    return complete_or_raise(extract_workspace(settings, workspace))


@task(
    name="extract-directory",
    task_run_name="extract-directory-{settings.org_id}",
    retries=2,
    retry_delay_seconds=30,
    retry_condition_fn=retry_only_transient,
    cache_policy=NO_CACHE,  # inputs hold the Admin API key: never hash or persist them
    persist_result=False,
)
def extract_directory_task(settings: DirectorySettings) -> DirectoryExtract:
    return complete_or_raise(extract_directory(settings))


Extract = TypeVar("Extract", WorkspaceExtract, DirectoryExtract)


def complete_or_raise(extract: Extract) -> Extract:
    """The extract when complete; else an ExtractionError carrying it (a transient one when
    another attempt may help)."""
    if extract.status == RunStatus.COMPLETE:
        return extract
    if extract.error_kind is not None and extract.error_kind.retryable:
        raise TransientExtractionError(extract)
    raise ExtractionError(extract)


@task(name="record-run", task_run_name="record-{extract.workspace}", cache_policy=NO_CACHE)
def record_run_task(
    extract: WorkspaceExtract,
    db_path: str,
    policy: Policy,
    flow_run_id: str | None,
    directory: DirectoryExtract | None = None,
    signer: RunSigner | None = None,
    anchor_log: Path | None = None,
) -> RunRecord:
    """Store (and with `signer` sign) the run, then append it to `anchor_log`, outside the
    evidence file, as soon as it is committed, and publish the same line as an artifact."""
    with EvidenceStore.open(db_path) as store:
        record = store.record_run(
            extract,
            policy=policy,
            directory=directory,
            prefect_flow_run_id=flow_run_id,
            signer=signer,
        )
    if anchor_log is not None:
        line = append_anchor(anchor_log, record, evidence=Path(db_path), signer=signer)
        publish_anchor_artifact(record, line)
    return record


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


@task(name="write-daily-report", task_run_name="report-{stored.workspace}", cache_policy=NO_CACHE)
def daily_report_task(stored: RunRecord, db_path: str, reports_dir: str) -> ReportBundle:
    with EvidenceStore.open(db_path, read_only=True) as store:
        return write_daily_report(store.conn, stored.run_id, Path(reports_dir))


@task(name="write-period-report", task_run_name="audit-{workspace}", cache_policy=NO_CACHE)
def period_report_task(
    workspace: str, start: date, end: date, db_path: str, reports_dir: str
) -> ReportBundle:
    with EvidenceStore.open(db_path, read_only=True) as store:
        return write_period_report(store.conn, workspace, start, end, Path(reports_dir))


@dataclass(frozen=True, slots=True)
class ViolationEvents:
    opened: int
    resolved: int


@task(name="emit-violation-events", cache_policy=NO_CACHE)
def emit_violation_events_task(stored: RunRecord, db_path: str) -> ViolationEvents:
    """One Prefect event per member whose violation opened or closed since the last complete run.

    Automations (Slack, e-mail, PagerDuty) can trigger on these without code.
    """
    with EvidenceStore.open(db_path, read_only=True) as store:
        opened, resolved = violation_changes(store.conn, stored.run_id)
    for name, frame in (("opened", opened), ("resolved", resolved)):
        for member in frame.to_dict("records"):
            key = member.get("account_id") or member.get("member_key") or member.get("uuid")
            emit_event(
                event=f"bitbucket.2sv.violation.{name}",
                resource={
                    "prefect.resource.id": f"bitbucket.workspace.{stored.workspace}.member.{key}",
                    "prefect.resource.name": str(member.get("nickname") or key),
                },
                related=[
                    {
                        "prefect.resource.id": f"bb2sv.run.{stored.run_id}",
                        "prefect.resource.role": "evidence",
                    }
                ],
                payload={k: _jsonable(v) for k, v in member.items()},
            )
    return ViolationEvents(opened=len(opened), resolved=len(resolved))


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def artifact_key(prefix: str, workspace: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", f"{prefix}-{workspace}".lower()).strip("-")


@task(name="publish-artifacts", task_run_name="artifacts-{stored.workspace}", cache_policy=NO_CACHE)
def publish_artifacts_task(stored: RunRecord, bundle: ReportBundle | None) -> None:
    files = {} if bundle is None else bundle.files
    links = "\n".join(
        f"- {kind}: [{path.name}]({path.resolve().as_uri()})" for kind, path in files.items()
    )
    summary = bundle.summary_markdown if bundle else f"Run {stored.run_id}: {stored.status}"
    create_markdown_artifact(
        markdown=f"{summary}\n\n### Files\n{links}\n",
        key=artifact_key("bb2sv-daily", stored.workspace),
        description=f"2SV compliance for {stored.workspace}",
    )
    create_table_artifact(
        table=[
            {
                "workspace": stored.workspace,
                "status": stored.status,
                "report_status": bundle.status if bundle else "not written",
                "members": stored.member_count,
                "run_id": stored.run_id,
                "run_hash": stored.run_hash,
                "signing_key_id": stored.signing_key_id or "",
                "report_dir": str(bundle.directory) if bundle else "",
            }
        ],
        key=artifact_key("bb2sv-run", stored.workspace),
        description="Evidence run recorded for this workspace",
    )
