"""The events a collection emits: one summary per run, member events bounded in size."""

from __future__ import annotations

import orjson
import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker

from emulator import Scenario
from tasks.events import MAX_PAYLOAD_BYTES, MAX_TEXT, bounded

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_huge_display_name_is_cut_and_the_run_sends_one_summary(
    collect_flow, bitbucket_env, monkeypatch
):
    bitbucket_env.set_scenario(
        Scenario(display_name_bytes=1_000_000, fault_workspace="alpha", fault_listing="members")
    )
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    try:
        state = collect_flow(["alpha"])
    finally:
        worker.drain()
    assert state.is_completed(), state.message
    (outcome,) = state.result()
    events = [e for client in AssertingEventsClient.all for e in client.events]
    mine = [e for e in events if e.related and f"bb2sv.run.{outcome.run_id}" in str(e.related)]
    huge = [e for e in mine if str(e.payload.get("display_name", "")).startswith("xxxx")]
    assert huge, "the member with the 1 MB name still has its violation event"
    assert len(huge[0].payload["display_name"]) == MAX_TEXT
    assert all(len(orjson.dumps(e.payload)) <= MAX_PAYLOAD_BYTES for e in mine)
    assert {e.resource["bb2sv.severity"] for e in mine} <= {"critical", "high", "medium"}

    flow_run = str(state.state_details.flow_run_id)
    (summary,) = [e for e in events if e.resource.id == f"bb2sv.collection.{flow_run}"]
    assert summary.event == "bb2sv.collection.finished"
    assert summary.resource["bb2sv.status"] == "complete"
    payload = summary.payload
    assert (payload["complete"], payload["members"]) == (1, outcome.member_count)
    assert payload["compliance_pct_min"] == outcome.compliance_pct is not None


def test_bounded_cuts_strings_lists_and_the_whole_payload():
    payload = bounded(
        {"status": "complete", "name": "n" * 5000, "by_workspace": [{"w": "x" * 300}] * 400}
    )
    assert payload["status"] == "complete" and len(payload["name"]) == MAX_TEXT
    assert len(orjson.dumps(payload)) <= MAX_PAYLOAD_BYTES
    assert payload.get("truncated") is True or len(payload["by_workspace"]) <= 50
