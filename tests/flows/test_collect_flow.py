"""The collection and audit-report flows, as real Prefect runs against the emulator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import orjson
import pytest
from prefect.events.clients import AssertingEventsClient
from prefect.events.worker import EventsWorker

from emulator import Scenario
from flows.audit_report import bitbucket_2sv_audit_report
from flows.collect import collect_bitbucket_2sv
from flows.collection import sliding_window
from tasks.evidence.page_bodies import expand_in_plain_duckdb
from tasks.vocabulary import RunStatus

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run_collect(tmp_path, workspaces, **extra):
    return collect_bitbucket_2sv(
        workspaces=workspaces,
        db_path=str(tmp_path / "evidence.duckdb"),
        reports_dir=str(tmp_path / "reports"),
        retry_delay_seconds=0,
        return_state=True,
        **extra,
    )


def utc_today() -> date:
    return datetime.now(UTC).date()


def runs(tmp_path, flow_run_id: str | None = None):
    only = "" if flow_run_id is None else "where prefect_flow_run_id = $flow_run_id "
    with duckdb.connect(str(tmp_path / "evidence.duckdb"), read_only=True) as conn:
        return conn.execute(
            "select workspace, status, member_count, prefect_flow_run_id, error, error_kind "
            f"from collection_runs {only}order by workspace",
            {} if flow_run_id is None else {"flow_run_id": flow_run_id},
        ).fetchall()


@pytest.fixture(scope="module")
def collected_twice(emu, prefect_harness, point_at_emulator, tmp_path_factory):
    """alpha and beta collected by one flow run, then alpha again by a second, into one
    evidence file and reports folder: that folder, both flow runs' states, and the members
    the emulator served each workspace.
    Several tests read these two runs instead of each paying for flow runs of its own."""
    folder = tmp_path_factory.mktemp("collected_twice")
    with pytest.MonkeyPatch.context() as env:
        point_at_emulator(emu, env)
        members = {ws: len(emu.expected_members(ws)) for ws in ("alpha", "beta")}
        first = run_collect(folder, ["alpha", "beta"])
        second = run_collect(folder, ["alpha"])
    return SimpleNamespace(folder=folder, first=first, second=second, members=members)


def test_every_workspace_complete(collected_twice):
    folder, state = collected_twice.folder, collected_twice.first

    assert state.is_completed(), state.message
    outcomes = state.result()
    assert [o.workspace for o in outcomes] == ["alpha", "beta"]
    assert all(o.complete and o.status == RunStatus.COMPLETE for o in outcomes)
    flow_run_id = str(state.state_details.flow_run_id)
    stored = runs(folder, flow_run_id)
    assert [(w, s) for w, s, *_ in stored] == [("alpha", "complete"), ("beta", "complete")]
    for workspace, _status, member_count, run_flow_id, _error, _kind in stored:
        assert member_count == collected_twice.members[workspace]
        assert run_flow_id == flow_run_id
    for outcome in outcomes:
        # Reports are dated by when the run happened (UTC), not by the emulator's world.
        report_dir = folder / "reports" / str(utc_today()) / outcome.workspace
        assert outcome.report_dir == str(report_dir)
        assert list(report_dir.glob("*.manifest.json")), "each run writes a manifest"


def test_artifacts_link_the_run(collected_twice, artifact_of):
    state = collected_twice.first
    assert state.is_completed(), state.message
    assert "alpha" in artifact_of(state, "bb2sv-daily-alpha").data
    assert state.result()[0].run_id in artifact_of(state, "bb2sv-run-alpha").data


def test_the_anchor_line_is_witnessed_by_a_prefect_artifact(collected_twice, artifact_of):
    # The key holds the newest run's line; older ones stay in its history.
    folder, state = collected_twice.folder, collected_twice.second
    assert state.is_completed(), state.message
    logged = (folder / "reports" / "anchors.jsonl").read_text().splitlines()
    artifact = artifact_of(state, "bb2sv-anchor-alpha")
    witnessed = artifact.data.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert witnessed == logged[-1]  # the very line, anchored_at included
    assert orjson.loads(witnessed)["run_id"] == state.result()[0].run_id


def test_incomplete_workspace_fails_the_run_and_keeps_the_good_one(tmp_path, bitbucket_env):
    bitbucket_env.set_scenario(Scenario(next_loop=True, fault_workspace="beta"))
    state = run_collect(tmp_path, ["alpha", "beta"])

    assert state.is_failed()
    assert "beta" in state.message and "alpha" not in state.message
    assert "loop" in state.message
    stored = {w: (s, kind) for w, s, _n, _f, _e, kind in runs(tmp_path)}
    assert stored == {"alpha": ("complete", None), "beta": ("incomplete", "anomaly")}
    with duckdb.connect(str(tmp_path / "evidence.duckdb"), read_only=True) as conn:
        fed = conn.execute("select distinct workspace from daily_compliance").fetchall()
    assert fed == [("alpha",)], "an incomplete run never feeds daily_compliance"


def test_auth_failure_is_not_retried_and_is_stored(tmp_path, bitbucket_env, monkeypatch):
    emu = bitbucket_env
    monkeypatch.setenv("BITBUCKET_TOKEN", "wrong-token-value-123")
    before = emu.request_count
    state = run_collect(tmp_path, ["alpha"])

    assert state.is_failed()
    # Both listings start at once; the first 401 stops the other listing.
    assert 1 <= emu.request_count - before <= 2, "a 401 is final: no retry, no task retry"
    ((_w, status, _n, _f, error, kind),) = runs(tmp_path)
    assert (status, kind) == ("failed", "auth")
    assert "wrong-token-value-123" not in error
    assert "wrong-token-value-123" not in state.message


def test_unknown_workspace_is_named(tmp_path, bitbucket_env):
    state = run_collect(tmp_path, ["alpha", "no-such-ws"])
    assert state.is_failed()
    assert "no-such-ws" in state.message
    stored = {w: (s, kind) for w, s, _n, _f, _e, kind in runs(tmp_path)}
    assert stored == {"alpha": ("complete", None), "no-such-ws": ("failed", "not_found")}


def test_violation_events_follow_the_evidence(tmp_path, bitbucket_env, monkeypatch):
    emu = bitbucket_env
    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)
    try:
        emu.set_day(date(2026, 11, 1))
        assert run_collect(tmp_path, ["beta"]).is_completed()
        emu.set_day(date(2026, 11, 20))
        assert run_collect(tmp_path, ["beta"]).is_completed()
    finally:
        worker.drain()
        emu.set_day(date(2026, 11, 20))
    events = [e for client in AssertingEventsClient.all for e in client.events]
    opened = {e.resource.id for e in events if e.event == "bitbucket.2sv.violation.opened"}
    resolved = {e.resource.id for e in events if e.event == "bitbucket.2sv.violation.resolved"}

    from tasks.evidence.store import EvidenceStore
    from tasks.report import violation_changes

    with EvidenceStore.open(str(tmp_path / "evidence.duckdb"), read_only=True) as store:
        first, second = [
            r[0]
            for r in store.conn.execute(
                "select run_id from collection_runs order by seq"
            ).fetchall()
        ]
        expected_opened, expected_resolved = set(), set()
        for run_id in (first, second):
            o, r = violation_changes(store.conn, run_id)
            expected_opened |= {f"bitbucket.workspace.beta.member.{k}" for k in o["account_id"]}
            expected_resolved |= {f"bitbucket.workspace.beta.member.{k}" for k in r["account_id"]}
    assert opened == expected_opened and opened, "the first run opens every current violation"
    assert resolved == expected_resolved


def test_audit_report_flow_reads_only_the_evidence(tmp_path, bitbucket_env):
    from tasks.bitbucket.config import settings_from_env
    from tasks.bitbucket.extract import extract_workspace
    from tasks.evidence.store import EvidenceStore
    from tasks.policy import DEFAULT_POLICY

    with EvidenceStore.open(tmp_path / "evidence.duckdb") as store:  # no collect flow needed
        store.record_run(extract_workspace(settings_from_env(), "alpha"), policy=DEFAULT_POLICY)
    bitbucket_env.set_scenario(Scenario(hourly_budget=1))  # the API is now unusable
    results = bitbucket_2sv_audit_report(
        workspaces=["alpha"],
        start=utc_today() - timedelta(days=30),
        end=utc_today(),
        db_path=str(tmp_path / "evidence.duckdb"),
        reports_dir=str(tmp_path / "reports"),
    )
    (result,) = results
    assert result.workspace == "alpha"
    for path in result.files.values():
        assert path.startswith(str(tmp_path / "reports" / str(utc_today()) / "alpha"))
    html = Path(result.files["html"]).read_text(encoding="utf-8")
    assert "EMULATOR DATA" in html


def test_credentials_from_a_secret_block_never_logged(tmp_path, bitbucket_env, monkeypatch, caplog):
    from prefect.blocks.system import Secret

    emu = bitbucket_env
    Secret(value=emu.admin_token).save("bb2sv-test-token", overwrite=True)
    monkeypatch.delenv("BITBUCKET_TOKEN")
    caplog.set_level("DEBUG")
    state = run_collect(tmp_path, ["alpha"], secret_blocks={"BITBUCKET_TOKEN": "bb2sv-test-token"})

    assert state.is_completed(), state.message
    assert emu.admin_token not in caplog.text
    with duckdb.connect(str(tmp_path / "evidence.duckdb"), read_only=True) as conn:
        expand_in_plain_duckdb(conn)  # page bodies as they arrived, not compressed
        for table in ("collection_runs", "raw_api_pages", "member_2sv_observations"):
            dump = conn.execute(f"select * from {table}").fetchall()
            assert emu.admin_token not in repr(dump)
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file():
            assert emu.admin_token.encode() not in path.read_bytes()


def test_missing_secret_block_is_a_clear_config_error(tmp_path, bitbucket_env, monkeypatch):
    from tasks.bitbucket.exceptions import ConfigError

    monkeypatch.delenv("BITBUCKET_TOKEN")
    monkeypatch.setenv("BITBUCKET_TOKEN_BLOCK", "no-such-block")
    state = run_collect(tmp_path, ["alpha"])
    assert state.is_failed()
    with pytest.raises(ConfigError, match="no-such-block"):
        state.result()


@pytest.mark.parametrize("limit", [1, 2, 3, 10])
def test_sliding_window_bounds_and_refills(limit):
    """At most `limit` started and unfinished; a slot is refilled as soon as one finishes."""
    items = list(range(7))
    started: list[int] = []
    in_flight: set[int] = set()
    peak = 0

    def start(item: int) -> int:
        nonlocal peak
        started.append(item)
        in_flight.add(item)
        peak = max(peak, len(in_flight))
        return item

    def next_done(running: list[int]) -> int:
        done = max(running)  # finish out of order: the newest first
        in_flight.discard(done)
        return done

    finished = []
    for item, handle in sliding_window(items, limit, start=start, next_done=next_done):
        assert item == handle
        # when the caller sees a finished item, its slot has already been refilled
        assert len(in_flight) == min(limit, len(items) - len(finished) - 1)
        finished.append(item)
    assert sorted(finished) == items and started == items
    assert peak == min(limit, len(items))


def test_one_workspace_at_a_time_still_collects_all(tmp_path, bitbucket_env):
    state = run_collect(tmp_path, ["alpha", "beta"], max_concurrent_workspaces=1)
    assert state.is_completed(), state.message
    assert [(w, s) for w, s, *_ in runs(tmp_path)] == [("alpha", "complete"), ("beta", "complete")]
