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


def run_collect_flow(**parameters) -> list[WorkspaceOutcome]:
    """Preflight (so bad configuration fails before Prefect starts), then the collection flow;
    one outcome per workspace, whatever the run's final state."""
    from flows.collect import collect_bitbucket_2sv
    from tasks.preflight import preflight

    preflight(
        db_path=parameters["db_path"],
        reports_dir=parameters["reports_dir"],
        policy_path=parameters.get("policy_path"),
        max_concurrent_workspaces=parameters.get("max_concurrent_workspaces", 1),
        anchor_log=parameters.get("anchor_log"),
    )
    return flow_result(collect_bitbucket_2sv(**parameters, return_state=True))


def run_audit_flow(
    workspaces: list[str], start: date, end: date, db_path: str, reports_dir: str
) -> list[AuditOutcome]:
    from flows.audit_report import bitbucket_2sv_audit_report
    from tasks.evidence.store import EvidenceStore

    if end < start:
        raise ConfigError(f"--to ({end}) is before --from ({start}).")
    with EvidenceStore.open(db_path, read_only=True):  # a missing or corrupt file fails here
        pass
    state = bitbucket_2sv_audit_report(
        workspaces=workspaces,
        start=start,
        end=end,
        db_path=db_path,
        reports_dir=reports_dir,
        return_state=True,
    )
    return flow_result(state)


def flow_result(state) -> list:
    """What a finished flow run returned, Failed or not; an exception it raised is re-raised.

    The collection flow ends Failed *with* its per-workspace outcomes when a workspace is
    incomplete: the caller still needs them to report and pick the exit code.
    """
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result
