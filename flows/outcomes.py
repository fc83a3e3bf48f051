"""What the flows return: typed outcomes the CLI, the demo and exit codes read by attribute.

outcome = collect_bitbucket_2sv(workspaces=["acme"])[0]
outcome.complete, outcome.status, outcome.error_kind, outcome.report_dir
outcome.directory_status, outcome.directory_error   # the organization directory's read

A collection that is not whole ends Failed, and its state carries an exception (never a
bare list, which Prefect cannot raise): `CollectionIncomplete`, with the outcomes inside.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.vocabulary import ErrorKind, RunStatus

__all__ = [
    "AuditIncomplete",
    "AuditOutcome",
    "Collection",
    "CollectionIncomplete",
    "WorkspaceOutcome",
]


@dataclass(frozen=True, slots=True)
class WorkspaceOutcome:
    """One workspace of a collection: the stored run (its last attempt) and its daily report.

    `problems` lists the steps after extraction that failed for this workspace (store,
    report, events, artifacts), each in one sentence; `spooled` is where the attempt waits
    when the evidence file could not take it (`run_id` is then empty).
    """

    workspace: str
    status: RunStatus
    run_id: str
    run_hash: str
    member_count: int
    error: str | None
    error_kind: ErrorKind | None
    report_status: str | None
    report_dir: str | None
    attempts: int = 1
    problems: tuple[str, ...] = ()
    spooled: str | None = None
    compliance_pct: float | None = None  # the daily report's figure, for a complete run
    directory_status: RunStatus | None = None  # None: no organization directory configured
    directory_error: str | None = None
    directory_error_kind: ErrorKind | None = None
    # An attempt (this one or an earlier one) was stored or spooled without pages it read:
    # they could not be read back as they arrived (tasks/bitbucket/spill.py).
    pages_lost: bool = False

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.COMPLETE

    @property
    def directory_complete(self) -> bool:
        """The directory was read whole, or is not configured (nothing to miss)."""
        return self.directory_status in (None, RunStatus.COMPLETE)

    @property
    def clean(self) -> bool:
        """Complete with its directory, stored, and every step after it succeeded."""
        return (
            self.complete
            and self.directory_complete
            and not self.problems
            and not self.spooled
            and not self.pages_lost
        )


@dataclass(frozen=True, slots=True)
class Collection:
    """What one collection produced: an outcome per finished workspace, and what kept it from
    being whole (a stop and the workspaces it kept from starting, the directory's problem,
    spool files that were not stored)."""

    outcomes: list[WorkspaceOutcome]
    stopped_by: str | None = None
    not_started: tuple[str, ...] = ()
    directory_problem: str | None = None
    spool_problem: str | None = None

    @property
    def whole(self) -> bool:
        """Every workspace (and the directory) read, stored and reported whole; no stop;
        nothing left in the spool that was not stored."""
        return (
            self.stopped_by is None
            and not self.not_started
            and self.directory_problem is None
            and self.spool_problem is None
            and all(outcome.clean for outcome in self.outcomes)
        )

    def failure(self) -> CollectionIncomplete:
        return CollectionIncomplete(
            self.outcomes,
            self.stopped_by,
            self.not_started,
            self.directory_problem,
            self.spool_problem,
        )


class CollectionIncomplete(Exception):
    """The data of a Failed collection: which workspaces are not whole, and why.

    `stopped_by` names the signal or limit that stopped the collection (None if none did);
    `not_started` lists workspaces never attempted because of it; `directory` says why the
    organization directory was not read whole (None if it was, or is not configured);
    `spool` what in the spool folder was not stored (None: nothing).
    """

    def __init__(
        self,
        outcomes: list[WorkspaceOutcome],
        stopped_by: str | None = None,
        not_started: tuple[str, ...] = (),
        directory: str | None = None,
        spool: str | None = None,
    ) -> None:
        self.outcomes = outcomes
        self.stopped_by = stopped_by
        self.not_started = tuple(not_started)
        self.directory = directory
        self.spool = spool
        super().__init__(self.summary())

    def summary(self) -> str:
        parts = [
            f"{o.workspace}: {o.status}" + (f" ({o.error})" if o.error else "")
            for o in self.outcomes
            if not o.complete
        ]
        parts += [f"{o.workspace}: {'; '.join(o.problems)}" for o in self.outcomes if o.problems]
        parts += [
            f"{o.workspace}: not stored, kept in {o.spooled}" for o in self.outcomes if o.spooled
        ]
        if self.not_started:
            parts.append(f"not started: {', '.join(self.not_started)}")
        head = f"Stopped by {self.stopped_by}. " if self.stopped_by else ""
        text = f"{head}Not every workspace was read and recorded whole. " + "; ".join(parts)
        if self.directory:
            text += f" The organization directory was not read whole ({self.directory})."
        if self.spool:
            text += f" {self.spool}"
        return text

    def collection(self) -> Collection:
        return Collection(
            self.outcomes, self.stopped_by, self.not_started, self.directory, self.spool
        )

    def __reduce__(self):  # picklable with its outcomes (Prefect may persist the state's data)
        fields = (self.outcomes, self.stopped_by, self.not_started, self.directory, self.spool)
        return (type(self), fields)


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """One workspace's audit-period report: its status and files by format (md, html, …)."""

    workspace: str
    status: str
    directory: str
    files: dict[str, str]


class AuditIncomplete(Exception):
    """The data of a Failed audit-report run: the reports written and the ones that failed."""

    def __init__(self, outcomes: list[AuditOutcome], failures: dict[str, str]) -> None:
        self.outcomes = outcomes
        self.failures = failures
        listed = "; ".join(f"{workspace}: {why}" for workspace, why in failures.items())
        super().__init__(f"Not every audit report was written. {listed}")

    def __reduce__(self):
        return (type(self), (self.outcomes, self.failures))
