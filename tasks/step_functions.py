"""The collection's steps as plain functions: one definition for both ways of running them.

`bb2sv collect` without a Prefect API calls these directly (flows/local.py); the Prefect
flow runs the same functions as tasks (tasks/steps.py wraps each one with `task(...)`, and
adds only what needs Prefect: artifacts and events). Nothing here imports Prefect, so the
ad-hoc path never pays for starting it.

    from tasks.step_functions import Attempt, Destination, extract_attempt, record_attempt
    extract = extract_attempt(settings, Attempt("acme"))
    result = record_attempt(extract, Destination("evidence.duckdb", policy, seal))
    result.record               # the RunRecord; None (and result.spooled set) if the file
                                # could not take it
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.extract import extract_directory
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.clock import SYSTEM_CLOCK
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.bitbucket.models import WorkspaceExtract
from tasks.bitbucket.ratelimit import RequestPacer
from tasks.evidence import spool
from tasks.evidence.anchors import AnchorWriteError, append_anchor, append_spooled
from tasks.evidence.keys import RunSigner
from tasks.evidence.run_record import RunRecord
from tasks.evidence.store import EvidenceStore
from tasks.policy import Policy
from tasks.report import ReportBundle, write_daily_report, write_period_report

__all__ = [
    "Attempt",
    "Destination",
    "Witness",
    "daily_report",
    "extract_attempt",
    "extract_directory_once",
    "period_report",
    "record_attempt",
    "replay_spool",
]

# Told each anchor line as soon as it is appended (the Prefect flow publishes it as an
# artifact: a second witness that whoever edits the log cannot rewrite).
Witness = Callable[[RunRecord, str], None]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at reading a workspace. `not_before` and `stall_until` are on time.monotonic():
    wait until the first, and let no page keep failing past the second (None: no limit)."""

    workspace: str
    number: int = 1
    not_before: float = 0.0
    stall_until: float | None = None


def extract_attempt(
    settings: BitbucketSettings, attempt: Attempt, pacer: RequestPacer | None = None
) -> WorkspaceExtract:
    """Read one workspace (never raises for API faults), after the attempt's delay."""
    SYSTEM_CLOCK.sleep(attempt.not_before - SYSTEM_CLOCK.monotonic())  # a stop ends the wait
    return extract_workspace(
        settings, attempt.workspace, pacer=pacer, stall_until=attempt.stall_until
    )


def extract_directory_once(
    settings: DirectorySettings, pacer: RequestPacer | None = None
) -> DirectoryExtract:
    """Read the organization directory once (never raises for API faults), with the client's
    page retries and ceilings. It is not read again as a whole: its pages are stored with
    every workspace's run, so every request the Admin API saw is on record."""
    return extract_directory(settings, pacer=pacer)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where and how a collection stores its attempts: the evidence file, the policy in force,
    the Prefect flow run (None ad hoc), the collection's directory read, the signing key and
    the anchor log (None: not anchored)."""

    db_path: str
    policy: Policy
    seal: spool.SpoolSeal  # seals what it spools; only attempts it sealed are stored
    flow_run_id: str | None = None
    directory: DirectoryExtract | None = None
    signer: RunSigner | None = None
    anchor_log: Path | None = None


def record_attempt(
    extract: WorkspaceExtract, to: Destination, witness: Witness | None = None
) -> spool.StoreResult:
    """Store (and with a signer sign) the attempt with the collection's directory read; if
    the evidence file cannot take it, keep it in the spool. A stored run is appended to the
    anchor log, outside the evidence file, as soon as it is committed; a spooled attempt is
    noted there too."""
    result = spool.store_or_spool(
        to.db_path, extract, to.policy, to.flow_run_id, to.directory, to.signer, seal=to.seal
    )
    if result.spooled is not None and to.anchor_log is not None:
        try:  # so that losing the spool file before a collection stores it shows in verify
            append_spooled(
                to.anchor_log,
                workspace=extract.workspace,
                started_at=extract.started_at,
                spool_file=result.spooled,
                sha256=result.spooled_sha256,
                evidence=Path(to.db_path),
            )
        except AnchorWriteError as exc:
            return dataclasses.replace(result, reason=f"{result.reason} {exc}")
    return anchored(result, to, witness)


def replay_spool(to: Destination, witness: Witness | None = None) -> list[spool.StoreResult]:
    """Store (sign, anchor) the attempts an earlier collection had to spool, before this
    one's; a result whose `reason` is set was stored but could not be anchored."""
    results: list[spool.StoreResult] = []

    def anchor_now(record: RunRecord) -> None:  # before the next: a crash leaves none unanchored
        results.append(anchored(spool.StoreResult(record=record), to, witness))

    spool.replay(to.db_path, signer=to.signer, seal=to.seal, on_stored=anchor_now)
    return results


def anchored(
    result: spool.StoreResult, to: Destination, witness: Witness | None = None
) -> spool.StoreResult:
    """Append a stored run to the anchor log (and tell `witness` the line); a log that
    cannot be written leaves the run stored, and the result says what to append by hand."""
    if result.record is None or to.anchor_log is None:
        return result
    try:
        line = append_anchor(
            to.anchor_log, result.record, evidence=Path(to.db_path), signer=to.signer
        )
    except AnchorWriteError as exc:  # beside what the store had to say, if anything
        reason = str(exc) if result.reason is None else f"{result.reason}; {exc}"
        return dataclasses.replace(result, reason=reason)
    if witness is not None:
        witness(result.record, line)
    return result


def daily_report(stored: RunRecord, db_path: str, reports_dir: str) -> ReportBundle:
    """Write the stored run's dated daily report from the evidence file alone."""
    with EvidenceStore.open(db_path, read_only=True) as store:
        return write_daily_report(store.conn, stored.run_id, Path(reports_dir))


def period_report(
    workspace: str, start: date, end: date, db_path: str, reports_dir: str
) -> ReportBundle:
    """Write one workspace's audit-period report from the evidence file alone."""
    with EvidenceStore.open(db_path, read_only=True) as store:
        return write_period_report(store.conn, workspace, start, end, Path(reports_dir))
