"""What the flows return: typed outcomes the CLI, the demo and exit codes read by attribute.

outcome = collect_bitbucket_2sv(workspaces=["acme"])[0]
outcome.complete, outcome.status, outcome.error_kind, outcome.report_dir
outcome.directory_status, outcome.directory_error   # the organization directory's read
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.vocabulary import ErrorKind, RunStatus

__all__ = ["AuditOutcome", "WorkspaceOutcome"]


@dataclass(frozen=True, slots=True)
class WorkspaceOutcome:
    """One workspace of a collection: the stored run and its daily report."""

    workspace: str
    status: RunStatus
    run_id: str
    run_hash: str
    member_count: int
    error: str | None
    error_kind: ErrorKind | None
    report_status: str | None
    report_dir: str | None
    directory_status: RunStatus | None = None  # None: no organization directory configured
    directory_error: str | None = None
    directory_error_kind: ErrorKind | None = None

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.COMPLETE

    @property
    def directory_complete(self) -> bool:
        """The directory was read whole, or is not configured (nothing to miss)."""
        return self.directory_status in (None, RunStatus.COMPLETE)


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """One workspace's audit-period report: its status and files by format (md, html, …)."""

    workspace: str
    status: str
    directory: str
    files: dict[str, str]
