"""Running the flows from the command line: the shared preflight, then a real Prefect flow run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from flows.outcomes import AuditOutcome, CollectionIncomplete, WorkspaceOutcome
from tasks.bitbucket.exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class Collection:
    """What a collection flow run produced, whatever its final state."""

    outcomes: list[WorkspaceOutcome]
    stopped_by: str | None = None
    not_started: tuple[str, ...] = field(default=())


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
    retry_delay_seconds: float = 10.0,
    attempts: int = 3,
    give_up_after_seconds: float = 180.0,
    time_limit_seconds: float = 3600.0,
    anchor_log: str | None = None,
) -> Collection:
    """Preflight (so bad configuration fails before Prefect starts), then the collection flow."""
    from flows.collect import collect_bitbucket_2sv
    from tasks.preflight import preflight

    preflight(
        db_path,
        reports_dir,
        policy_path,
        None,
        max_concurrent_workspaces,
        anchor_log,
        workspaces,
    )
    state = collect_bitbucket_2sv(
        workspaces, db_path, reports_dir, policy_path,
        max_concurrent_workspaces=max_concurrent_workspaces,
        retry_delay_seconds=retry_delay_seconds, attempts=attempts,
        give_up_after_seconds=give_up_after_seconds, time_limit_seconds=time_limit_seconds,
        anchor_log=anchor_log, return_state=True,
    )  # fmt: skip
    result = state.result(raise_on_failure=False)
    if isinstance(result, CollectionIncomplete):
        return Collection(result.outcomes, result.stopped_by, result.not_started)
    if isinstance(result, BaseException):
        raise result
    return Collection(result)


def run_audit_flow(
    workspaces: list[str], start: date, end: date, db_path: str, reports_dir: str
) -> list[AuditOutcome]:
    from flows.audit_report import bitbucket_2sv_audit_report
    from tasks.evidence.store import EvidenceStore
    from tasks.period import check_window

    check_window(start, end)
    with EvidenceStore.open(db_path, read_only=True):  # a missing or corrupt file fails here
        pass
    return flow_result(
        bitbucket_2sv_audit_report(workspaces, start, end, db_path, reports_dir, return_state=True)
    )


def flow_result(state) -> list:
    """What a finished flow run returned, Failed or not; an exception it raised is re-raised.

    A collection that is not whole still carries its outcomes (`CollectionIncomplete`):
    the caller needs them to report. `AuditIncomplete` is raised, outcomes and all.
    """
    result = state.result(raise_on_failure=False)
    if isinstance(result, CollectionIncomplete):
        return result.outcomes
    if isinstance(result, BaseException):
        raise result
    return result
