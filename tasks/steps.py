"""Thin Prefect task wrappers around the plain functions of each step.

The business logic lives in `tasks.bitbucket`, `tasks.evidence` and `tasks.report`; these
wrappers only add what Prefect is good at: names, artifacts and events. Retrying a workspace
is the flow's decision (flows/attempts.py), not a Prefect task retry, so that every attempt
is stored before the next one starts. Tests call the plain functions, or a task's `.fn`
where Prefect adds nothing.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.extract import extract_directory
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.clock import SYSTEM_CLOCK
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.bitbucket.models import WorkspaceExtract
from tasks.events import emit_bounded, member_event
from tasks.evidence import spool
from tasks.evidence.anchors import AnchorWriteError, append_anchor
from tasks.evidence.keys import RunSigner
from tasks.evidence.run_record import RunRecord
from tasks.evidence.store import EvidenceStore
from tasks.policy import Policy
from tasks.report import ReportBundle, violation_changes, write_daily_report, write_period_report
from tasks.shared_budget import pacer_for_run


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at reading a workspace. `not_before` and `stall_until` are on time.monotonic():
    wait until the first, and let no page keep failing past the second (None: no limit)."""

    workspace: str
    number: int = 1
    not_before: float = 0.0
    stall_until: float | None = None


@task(
    name="extract-workspace",
    task_run_name="extract-{attempt.workspace}-{attempt.number}",
    cache_policy=NO_CACHE,  # inputs hold credentials: never hash or persist them
    persist_result=False,
)
def extract_workspace_task(settings: BitbucketSettings, attempt: Attempt) -> WorkspaceExtract:
    """Read one workspace (never raises for API faults), after the attempt's delay."""
    SYSTEM_CLOCK.sleep(attempt.not_before - SYSTEM_CLOCK.monotonic())  # a stop ends the wait
    return extract_workspace(
        settings,
        attempt.workspace,
        pacer=pacer_for_run(settings),
        stall_until=attempt.stall_until,
    )


@task(
    name="extract-directory",
    task_run_name="extract-directory-{settings.org_id}",
    cache_policy=NO_CACHE,  # inputs hold the Admin API key: never hash or persist them
    persist_result=False,
)
def extract_directory_task(settings: DirectorySettings) -> DirectoryExtract:
    """Read the organization directory once (never raises for API faults), with the client's
    page retries and ceilings. It is not read again as a whole: its pages are stored with
    every workspace's run, so every request the Admin API saw is on record."""
    return extract_directory(settings, pacer=pacer_for_run(settings.http))


@task(name="record-run", task_run_name="record-{extract.workspace}", cache_policy=NO_CACHE)
def record_run_task(
    extract: WorkspaceExtract,
    db_path: str,
    policy: Policy,
    flow_run_id: str | None,
    directory: DirectoryExtract | None = None,
    signer: RunSigner | None = None,
    anchor_log: Path | None = None,
) -> spool.StoreResult:
    """Store (and with `signer` sign) the attempt with the collection's directory read; if
    the evidence file cannot take it, keep it in the spool. A stored run is appended to
    `anchor_log`, outside the evidence file, as soon as it is committed, and the same line
    is published as an artifact."""
    result = spool.store_or_spool(db_path, extract, policy, flow_run_id, directory, signer)
    return anchored(result, db_path, signer, anchor_log)


@task(name="store-spooled-runs", cache_policy=NO_CACHE)
def replay_spool_task(
    db_path: str, signer: RunSigner | None = None, anchor_log: Path | None = None
) -> list[spool.StoreResult]:
    """Store (sign, anchor) the attempts an earlier collection had to spool, before this
    one's; a result whose `reason` is set was stored but could not be anchored."""
    return [
        anchored(spool.StoreResult(record=record), db_path, signer, anchor_log)
        for record in spool.replay(db_path, signer=signer)
    ]


def anchored(
    result: spool.StoreResult, db_path: str, signer: RunSigner | None, anchor_log: Path | None
) -> spool.StoreResult:
    """Append a stored run to the anchor log and publish the line; a log that cannot be
    written leaves the run stored, and the result says what to append by hand."""
    if result.record is None or anchor_log is None:
        return result
    try:
        line = append_anchor(anchor_log, result.record, evidence=Path(db_path), signer=signer)
    except AnchorWriteError as exc:
        return dataclasses.replace(result, reason=str(exc))
    publish_anchor_artifact(result.record, line)
    return result


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
    not_sent: int = 0


@task(name="emit-violation-events", cache_policy=NO_CACHE)
def emit_violation_events_task(stored: RunRecord, db_path: str) -> ViolationEvents:
    """One bounded Prefect event per member whose violation opened or closed since the last
    complete run (tasks/events.py). Automations (Slack, e-mail, PagerDuty) trigger on them."""
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
