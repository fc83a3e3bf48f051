"""Prefect events a collection emits, each small enough to send and unable to abort a run.

Per member whose violation opened or closed: `bitbucket.2sv.violation.opened|resolved`, with
the member as the resource and its severity as the resource label `bb2sv.severity` (so an
automation can match `critical` without reading payloads). Per collection: one
`bb2sv.collection.finished` summary (counts, compliance %, status per workspace).

Every string is cut to MAX_TEXT characters and a payload to MAX_PAYLOAD_BYTES of JSON: a
1 MB display name would otherwise make the event too large for Prefect's API. Emitting never
raises; what could not be sent is logged and counted.

    summary_event(flow_run_id, outcomes, stopped_by=None)    # (event, resource, payload)
    emit_bounded("bb2sv.collection.finished", resource, payload)  # True when handed to Prefect
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT",
    "SUMMARY_EVENT",
    "bounded",
    "emit_bounded",
    "member_event",
    "summary_event",
]

log = logging.getLogger("bb2sv.events")

MAX_TEXT = 256
MAX_PAYLOAD_BYTES = 16_000
MAX_WORKSPACES_LISTED = 50
SUMMARY_EVENT = "bb2sv.collection.finished"
VIOLATION_EVENT = "bitbucket.2sv.violation.{}"


def _text(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def bounded(payload: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values, strings cut to MAX_TEXT, lists to MAX_WORKSPACES_LISTED entries,
    and the whole cut to MAX_PAYLOAD_BYTES (what does not fit is dropped, and said)."""

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key)[:MAX_TEXT]: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value[:MAX_WORKSPACES_LISTED]]
        return _text(value)

    result = clean(payload)
    droppable = list(result)  # the last keys go first: lists and details come last
    while len(orjson.dumps(result)) > MAX_PAYLOAD_BYTES and droppable:
        del result[droppable.pop()]
        result["truncated"] = True
    return result


def member_event(
    change: str, workspace: str, member: Mapping[str, Any], run_id: str
) -> tuple[str, dict[str, str], dict[str, Any], list[dict[str, str]]]:
    """(event, resource, payload, related) for one member whose violation opened/resolved."""
    key = member.get("account_id") or member.get("member_key") or member.get("uuid")
    resource = {
        "prefect.resource.id": _text(f"bitbucket.workspace.{workspace}.member.{key}"),
        "prefect.resource.name": _text(member.get("nickname") or key),
        "bb2sv.workspace": _text(workspace),
        "bb2sv.severity": _text(member.get("severity") or "none"),
    }
    related = [{"prefect.resource.id": f"bb2sv.run.{run_id}", "prefect.resource.role": "evidence"}]
    return VIOLATION_EVENT.format(change), resource, bounded(member), related


def summary_event(
    flow_run_id: str, outcomes: Sequence[Any], stopped_by: str | None = None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(event, resource, payload) summarising one collection: one per run, whatever happened.

    `outcomes` are flows.outcomes.WorkspaceOutcome (read by attribute, so this module stays
    below the flows).
    """
    complete = [o for o in outcomes if o.complete]
    if stopped_by:
        status = "stopped"
    elif outcomes and all(o.clean for o in outcomes):
        status = "complete"
    else:
        status = "incomplete"
    percents = [o.compliance_pct for o in complete if o.compliance_pct is not None]
    resource = {
        "prefect.resource.id": f"bb2sv.collection.{flow_run_id}",
        "bb2sv.status": status,
    }
    payload = {
        "status": status,
        "stopped_by": stopped_by,
        "workspaces": len(outcomes),
        "complete": len(complete),
        "not_complete": len(outcomes) - len(complete),
        "members": sum(o.member_count for o in complete),
        "compliance_pct_min": min(percents) if percents else None,
        "by_workspace": [
            {
                "workspace": o.workspace,
                "status": str(o.status),
                "members": o.member_count,
                "compliance_pct": o.compliance_pct,
                "run_id": o.run_id,
                "problems": len(o.problems),
            }
            for o in outcomes
        ],
    }
    return SUMMARY_EVENT, resource, bounded(payload)


def emit_bounded(
    event: str,
    resource: dict[str, str],
    payload: dict[str, Any],
    related: list[dict[str, str]] | None = None,
) -> bool:
    """Hand one event to Prefect; False (and a log line) if it could not be."""
    from prefect.events import emit_event

    try:
        emit_event(event=event, resource=resource, payload=payload, related=related)
    except Exception as exc:  # an alert that cannot be sent must not cost the evidence
        log.warning("could not emit %s for %s: %s", event, resource.get("prefect.resource.id"), exc)
        return False
    return True
