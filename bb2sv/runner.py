"""Running the flows from the command line: the shared preflight, then the collection.

`bb2sv collect` runs the collection flow when a Prefect API is configured (`PREFECT_API_URL`,
a Prefect profile or project settings: runs, logs, events and artifacts are then on that
server), and otherwise the same steps in-process without starting a Prefect server
(flows/local.py); the evidence and reports are the same either way.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bb2sv.terminal import logs_printed
from flows.outcomes import AuditIncomplete, AuditOutcome, Collection, CollectionIncomplete
from tasks.bitbucket.exceptions import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from flows.collection import CollectionOptions


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date like 2026-11-27, got {text!r}.") from None


def collect_as_configured(options: CollectionOptions, console: Console | None = None) -> Collection:
    """Preflight (bad configuration fails before anything starts), then collect: as the
    Prefect flow if a Prefect API is configured, else in-process, its warnings printed on
    `console` (there is no Prefect to show them)."""
    from flows.local import collect_locally
    from tasks.prefect_api import prefect_api_configured
    from tasks.preflight import preflight

    setup = preflight(
        options.db_path, options.reports_dir, options.policy_path, options.secret_blocks,
        options.max_concurrent_workspaces, options.anchor_log, options.workspaces,
    )  # fmt: skip
    if not prefect_api_configured():
        if console is None:
            return collect_locally(options, setup)
        with logs_printed(console):
            return collect_locally(options, setup)

    from flows.collect import collect_bitbucket_2sv

    require_prefect_api()
    state = collect_bitbucket_2sv(**options.model_dump(), return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, CollectionIncomplete):
        return Collection(result.outcomes, result.stopped_by, result.not_started, result.directory)
    if isinstance(result, BaseException):
        raise result
    return Collection(result)


def audit_as_configured(
    workspaces: list[str], start: date, end: date, db_path: str, reports_dir: str
) -> list[AuditOutcome]:
    """The audit-period reports: as the Prefect flow if a Prefect API is configured, else
    in-process. Raises `AuditIncomplete` (outcomes and all) if a workspace's failed."""
    from flows.audit import write_audit_reports
    from tasks.evidence.store import EvidenceStore
    from tasks.period import check_window
    from tasks.prefect_api import prefect_api_configured

    check_window(start, end)
    with EvidenceStore.open(db_path, read_only=True):  # a missing or corrupt file fails here
        pass
    if not prefect_api_configured():
        outcomes, failures = write_audit_reports(workspaces, start, end, db_path, reports_dir)
        if failures:
            raise AuditIncomplete(outcomes, failures)
        return outcomes

    from flows.audit_report import bitbucket_2sv_audit_report

    require_prefect_api()
    return flow_result(
        bitbucket_2sv_audit_report(workspaces, start, end, db_path, reports_dir, return_state=True)
    )


def require_prefect_api() -> None:
    """A ConfigError, before anything runs, when the configured Prefect API does not answer:
    the command would otherwise fail deep inside Prefect with a bare RuntimeError."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        parts = urlsplit(str(get_current_settings().api.url))
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no user:pass
        raise ConfigError(
            f"A Prefect API is configured ({url}, from PREFECT_API_URL or the Prefect profile) "
            f"but does not answer ({type(problem).__name__}). Start that server, fix the URL, "
            "or unset it to run in this process without Prefect."
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
