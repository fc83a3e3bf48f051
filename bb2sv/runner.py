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


def collect_as_configured(options: CollectionOptions, console: Console) -> Collection:
    """Collect: as the Prefect flow if a Prefect API is configured (after checking it
    answers), else in-process, its warnings printed on `console` (there is no Prefect to
    show them). Preflight runs first either way, so bad configuration fails before anything
    starts (the flow runs it again: a deployment has no CLI in front of it)."""
    from flows.local import collect_locally
    from tasks.prefect_api import prefect_api_configured

    use_prefect = prefect_api_configured()
    if use_prefect:
        require_prefect_api()  # before preflight, which may read Secret blocks from it
    setup = options.preflight()
    if not use_prefect:
        with logs_printed(console):
            return collect_locally(options, setup)

    from flows.collect import collect_bitbucket_2sv

    return flow_collection(collect_bitbucket_2sv(**options.model_dump(), return_state=True))


def audit_as_configured(
    workspaces: list[str], start: date, end: date, db_path: str, reports_dir: str
) -> list[AuditOutcome]:
    """The audit-period reports: as the Prefect flow if a Prefect API is configured, else
    in-process. Raises `AuditIncomplete` (outcomes and all) if a workspace's failed."""
    from flows.audit import write_audit_reports
    from tasks.evidence.store import EvidenceStore
    from tasks.heap import freeze_imported_objects
    from tasks.period import check_window
    from tasks.prefect_api import prefect_api_configured
    from tasks.preflight import check_reports_dir

    freeze_imported_objects()
    check_window(start, end)
    check_reports_dir(reports_dir)
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


def flow_collection(state) -> Collection:
    """What a finished collection flow run produced, whole or not."""
    result = finished_value(state)
    if isinstance(result, CollectionIncomplete):
        return result.collection()
    return Collection(result)


def flow_result(state) -> list:
    """The outcomes a finished flow run returned, Failed or not: a collection that is not
    whole still carries them (`CollectionIncomplete`); `AuditIncomplete` is raised, outcomes
    and all."""
    result = finished_value(state)
    return result.outcomes if isinstance(result, CollectionIncomplete) else result


def finished_value(state):
    """A finished flow run's return value; an exception it raised is re-raised, except the
    `CollectionIncomplete` a collection that is not whole carries its outcomes in."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException) and not isinstance(result, CollectionIncomplete):
        raise result
    return result
