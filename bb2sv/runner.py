"""Running the flows from the command line: the shared preflight, then a real Prefect flow run."""

from __future__ import annotations

from datetime import date

from flows.outcomes import AuditOutcome, WorkspaceOutcome
from tasks.bitbucket.exceptions import ConfigError


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date like 2026-11-27, got {text!r}.") from None


def run_collect_flow(
    workspaces: list[str],
    db_path: str,
    reports_dir: str,
    policy_path: str | None,
    max_concurrent_workspaces: int = 4,
    retry_delay_seconds: float = 30.0,
    anchor_log: str | None = None,
) -> list[WorkspaceOutcome]:
    """Preflight (so bad configuration fails before Prefect starts), then the collection flow;
    one outcome per workspace, whatever the run's final state."""
    from flows.collect import collect_bitbucket_2sv
    from tasks.preflight import preflight

    preflight(db_path, reports_dir, policy_path, None, max_concurrent_workspaces, anchor_log)
    state = collect_bitbucket_2sv(
        workspaces, db_path, reports_dir, policy_path,
        max_concurrent_workspaces=max_concurrent_workspaces,
        retry_delay_seconds=retry_delay_seconds, anchor_log=anchor_log, return_state=True,
    )  # fmt: skip
    return flow_result(state)


def run_audit_flow(
    workspaces: list[str], start: date, end: date, db_path: str, reports_dir: str
) -> list[AuditOutcome]:
    from flows.audit_report import bitbucket_2sv_audit_report
    from tasks.evidence.store import EvidenceStore

    if end < start:
        raise ConfigError(f"--to ({end}) is before --from ({start}).")
    with EvidenceStore.open(db_path, read_only=True):  # a missing or corrupt file fails here
        pass
    return flow_result(
        bitbucket_2sv_audit_report(workspaces, start, end, db_path, reports_dir, return_state=True)
    )


def flow_result(state) -> list:
    """What a finished flow run returned, Failed or not; an exception it raised is re-raised.

    The collection flow ends Failed *with* its per-workspace outcomes when a workspace is
    incomplete: the caller still needs them to report and pick the exit code.
    """
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result
