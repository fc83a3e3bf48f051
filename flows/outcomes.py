"""What the flows return: typed outcomes the CLI, the demo and exit codes read by attribute.

outcome = collect_bitbucket_2sv(workspaces=["acme"])[0]
outcome.complete, outcome.status, outcome.error_kind, outcome.report_dir
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

    @property
    def complete(self) -> bool:
        return self.status is RunStatus.COMPLETE


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """One workspace's audit-period report: its status and files by format (md, html, …)."""

    workspace: str
    status: str
    directory: str
    files: dict[str, str]
