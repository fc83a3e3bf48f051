"""Unattended collections: every attempt kept, workspaces isolated, stops and spools.

Real loopback HTTP to the emulator, real DuckDB files, a real reader process holding the
evidence file, a real SIGTERM. Real Prefect flow runs on the session harness where Prefect
takes part (artifacts, its SIGTERM handling, a cancellation); what lives in the one
collection (attempts, budgets, time limits, the spool) runs in-process, as `bb2sv collect`
runs it without a Prefect API.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from emulator import Scenario
from flows.outcomes import Collection, CollectionIncomplete
from tasks.vocabulary import ErrorKind, RunStatus

on_prefect = pytest.mark.usefixtures("prefect_harness")


def stored(tmp_path, columns="workspace, status, error, error_kind"):
    with duckdb.connect(str(tmp_path / "evidence.duckdb"), read_only=True) as conn:
        runs = conn.execute(f"select {columns} from collection_runs order by seq").fetchall()
        (pages,) = conn.execute("select count(*) from raw_api_pages").fetchone()
    return runs, pages


def failure_of(state) -> CollectionIncomplete:
    if isinstance(state, Collection):  # collected in-process
        assert not state.whole
        return state.failure()
    assert state.is_failed()
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, CollectionIncomplete), failure
    with pytest.raises(CollectionIncomplete):  # a Failed state carries an exception
        state.result()
    return failure


@on_prefect
def test_a_uuid_and_a_failing_report_cost_no_workspace_its_evidence(
    tmp_path, collect_flow, bitbucket_env, artifact_of
):

    emu = bitbucket_env
    beta = emu.state.specs["beta"].uuid.upper()  # as pasted from somewhere, braces and all
    today = datetime.now(UTC).date().isoformat()
    blocked = tmp_path / "r" / today / "alpha"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where alpha's report folder should go")

    state = collect_flow(["alpha", beta])
    failure = failure_of(state)

    outcomes = {outcome.workspace: outcome for outcome in failure.outcomes}
    assert outcomes["alpha"].complete and outcomes[beta].clean
    assert "daily report failed" in outcomes["alpha"].problems[0]
    folder = beta.strip("{}").lower()
    assert Path(outcomes[beta].report_dir) == tmp_path / "r" / today / folder
    assert list(Path(outcomes[beta].report_dir).glob("*.manifest.json"))
    runs, _ = stored(tmp_path, "workspace, status")
    last = dict(runs)  # in chain order: a workspace's last attempt wins
    assert last == {"alpha": "complete", beta: "complete"}
    assert outcomes[beta].run_id in artifact_of(state, f"bb2sv-run-{folder}").data
    assert "alpha: daily report failed" in str(failure)


def test_every_attempt_is_stored_and_requests_equal_pages(
    tmp_path, collect_local, bitbucket_env, monkeypatch
):
    emu = bitbucket_env
    # 50 ms a request: the permissions listing takes at least two round trips to give up,
    # so the members request (sent as the attempt starts) is always out before it does.
    emu.set_scenario(
        Scenario(
            html_errors=4, fault_listing="permissions", fault_workspace="gamma", latency_s=0.05
        )
    )
    monkeypatch.setenv("BITBUCKET_MAX_ATTEMPTS", "2")  # two 502s end an attempt
    before = emu.request_count
    collection = collect_local(["gamma"])

    assert collection.whole, collection.failure()
    runs, pages = stored(tmp_path)
    assert [status for _w, status, _e, _k in runs] == ["incomplete", "incomplete", "complete"]
    assert runs[0][2].startswith("attempt 1 of 3, read again in 0 s: gave up reading")
    assert runs[1][2].startswith("attempt 2 of 3, read again")
    # gamma's listings are one page each. The members request goes out as an attempt starts,
    # beside the permissions one, and is answered and kept when the permissions listing
    # gives up: 1 + 2 (two 502s), twice, then 1 + 1. (With two members pages, whether the
    # second was asked for before the stop depends on which answer comes first.)
    assert emu.request_count - before == pages == 8, "every request the API saw is on record"
    assert collection.outcomes[0].attempts == 3


def test_a_workspace_that_keeps_failing_is_given_up_within_its_budget(
    tmp_path, collect_local, bitbucket_env, monkeypatch
):
    emu = bitbucket_env
    emu.set_scenario(Scenario(html_errors=10_000, fault_workspace="alpha"))
    monkeypatch.setenv("BITBUCKET_RETRY_DEADLINE", "0.4")
    before = emu.request_count
    # Nine waits of 0.5 s between ten attempts are more than the 4 s budget, however fast
    # each attempt fails: with 0.2 s waits, a fast machine made all ten within 4 s.
    failure = failure_of(
        collect_local(["alpha"], attempts=10, retry_delay_seconds=0.5, give_up_after_seconds=4)
    )

    runs, pages = stored(tmp_path, "status, error, started_at, finished_at")
    assert 2 <= len(runs) < 10, "the budget, not the attempt count, ended it"
    assert "kept failing for about 4 s" in runs[-1][1]
    assert (runs[-1][3] - runs[0][2]).total_seconds() < 4 + 2
    assert emu.request_count - before == pages
    (outcome,) = failure.outcomes
    assert outcome.error_kind == ErrorKind.TRANSIENT and outcome.attempts == len(runs)


def terminate_once_reading(emu, then=lambda: None) -> threading.Thread:
    """SIGTERM to this process once the collection is reading (its handler is installed)
    and a page has come back, after `then()`: what a worker does, and a cancellation asks
    the API first."""
    before = emu.request_count

    def run() -> None:
        # Both listings ask for their first page at once, and for their second (beta has
        # three of each) as those come back. Once the emulator has all four, nothing else
        # starts for a whole latency: a SIGTERM then cannot cut a request the client has
        # counted before it reaches the emulator (with 3 it failed under load: 4 vs 3).
        deadline = time.monotonic() + 30  # a collection that never got there: no SIGTERM
        while emu.request_count - before < 4:  # that a later test could receive
            if time.monotonic() > deadline:
                return
            threading.Event().wait(0.01)
        then()
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@on_prefect
def test_sigterm_stores_the_attempt_in_flight_and_starts_nothing_new(
    tmp_path, collect_flow, bitbucket_env
):
    emu = bitbucket_env
    emu.set_scenario(Scenario(latency_s=0.3))
    before = emu.request_count
    killer = terminate_once_reading(emu)
    failure = failure_of(collect_flow(["beta", "alpha"], max_concurrent_workspaces=1))
    killer.join(5)

    assert failure.stopped_by == "SIGTERM" and failure.not_started == ("alpha",)
    (outcome,) = failure.outcomes
    assert (outcome.workspace, outcome.status, outcome.error_kind) == (
        "beta", RunStatus.FAILED, ErrorKind.STOPPED,
    )  # fmt: skip
    runs, pages = stored(tmp_path, "workspace, status, error, request_count")
    ((workspace, status, error, requests),) = runs
    assert (workspace, status) == ("beta", "failed") and "stopped by SIGTERM" in error
    assert 1 <= pages <= requests == emu.request_count - before


def test_the_time_limit_stops_the_collection_the_same_way(tmp_path, collect_local, bitbucket_env):
    # beta: three pages a listing, the two listings read side by side: 3 s, so the 1.5 s
    # limit falls half-way through the second pages' wait (at 0.5 s a page it fell on the
    # last page's arrival, a race the timer could lose).
    bitbucket_env.set_scenario(Scenario(latency_s=1.0))
    failure = failure_of(collect_local(["beta"], time_limit_seconds=1.5))
    assert failure.stopped_by == (
        "the collection's 1.5 s time limit (--time-limit, or the flow's time_limit_seconds; "
        "raise it if a collection needs longer)"
    )
    runs, _pages = stored(tmp_path, "status, error_kind, error")
    ((status, kind, error),) = runs
    assert (status, kind) == ("failed", "stopped") and "time limit" in error


@on_prefect
def test_a_prefect_cancellation_takes_the_same_path_and_ends_cancelled(
    tmp_path, collect_flow, bitbucket_env
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.states import Cancelling

    emu = bitbucket_env
    emu.set_scenario(Scenario(latency_s=0.3))
    name = f"cancel-me-{os.getpid()}-{id(tmp_path)}"

    def cancel_in_the_api() -> None:  # what `prefect flow-run cancel` does before the SIGTERM
        with get_client(sync_client=True) as client:
            (run,) = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
            client.set_flow_run_state(run.id, Cancelling(), force=True)

    killer = terminate_once_reading(emu, then=cancel_in_the_api)
    state = collect_flow(["beta"], flow_run_name=name)
    killer.join(5)

    assert state.is_cancelled(), state
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, CollectionIncomplete) and failure.stopped_by == "SIGTERM"
    runs, pages = stored(tmp_path, "status, error_kind")
    assert runs == [("failed", "stopped")] and pages >= 1


READER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
sys.stdin.readline()
"""


def test_a_held_file_spools_the_attempt_and_the_next_run_stores_it_first(
    tmp_path, collect_local, bitbucket_env, monkeypatch, caplog
):
    from tasks.evidence.store import EvidenceStore

    db = tmp_path / "evidence.duckdb"
    EvidenceStore.open(db).close()  # the file exists, with no run yet
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert reader.stdout.readline().strip() == "holding"
        monkeypatch.setenv("BB2SV_WRITER_WAIT", "0.5")
        failure = failure_of(collect_local(["alpha"]))
    finally:
        reader.communicate("done\n", timeout=30)

    (outcome,) = failure.outcomes
    assert outcome.complete and outcome.run_id == "" and outcome.spooled
    assert f"PID {reader.pid}" in outcome.problems[0] and "attempt 1 not stored" in str(failure)
    (warned,) = [r.getMessage() for r in caplog.records if "Collecting anyway" in r.getMessage()]
    assert f"PID {reader.pid}" in warned and "try again" not in warned, "one piece of advice"
    assert bitbucket_env.admin_token.encode() not in Path(outcome.spooled).read_bytes()
    spooled = Path(outcome.spooled)
    assert spooled.parent == Path(f"{db}.spool") and oct(spooled.stat().st_mode)[-3:] == "600"

    from tasks.evidence.verification import verify_evidence

    log = tmp_path / "r" / "anchors.jsonl"
    kept = spooled.read_bytes()
    spooled.unlink()  # lost before a collection could store it
    lost = verify_evidence(db, anchor_log=log)
    assert [p.what for p in lost.problems] == [
        f"the attempt of alpha started {json.loads(log.read_text())['started_at']} was spooled "
        f"(anchor log line 1) but is not in the evidence file, and its spool file "
        f"{spooled.name} is gone: it was deleted before a collection could store it"
    ]
    # Something else by its name is not the attempt: another suffix, a folder, other bytes.
    spooled.with_suffix(".txt").write_bytes(kept)
    spooled.with_suffix(".unverified").mkdir()
    spooled.with_suffix(".unreadable").write_bytes(b"{}")
    assert [p.what for p in verify_evidence(db, anchor_log=log).problems] == [
        p.what for p in lost.problems
    ]
    for decoy in (".txt", ".unreadable"):
        spooled.with_suffix(decoy).unlink()
    spooled.with_suffix(".unverified").rmdir()
    spooled.write_bytes(kept)
    assert verify_evidence(db, anchor_log=log).ok, "waiting in the spool is not lost"

    assert collect_local(["beta"]).whole
    runs, _ = stored(tmp_path, "workspace, status")
    assert runs == [("alpha", "complete"), ("beta", "complete")], "the spooled run first"
    assert list(spooled.parent.iterdir()) == []
    anchored = log.read_text(encoding="utf-8").splitlines()
    assert [(json.loads(line)["schema"], json.loads(line)["workspace"]) for line in anchored] == [
        ("bb2sv.spooled/1", "alpha"), ("bb2sv.anchor/1", "alpha"), ("bb2sv.anchor/1", "beta")
    ]  # fmt: skip
    assert verify_evidence(db, anchor_log=log).ok, "a spooled attempt stored since"


def test_a_spool_file_that_is_not_stored_makes_the_collection_not_whole(
    tmp_path, collect_local, bitbucket_env
):
    """Its workspaces are read and stored whole, but an attempt may be missing from the
    evidence file: the collection is not whole (a Prefect run Fails, and alerts) and
    `bb2sv collect` exits 7, until someone looks at the file. It used to exit 0."""
    from bb2sv.errors import ExitCode, exit_code_for_outcomes

    folder = tmp_path / "evidence.duckdb.spool"
    folder.mkdir()
    (folder / "20200101T000000000000Z-acme-junk0000.json").write_bytes(b"not an attempt")
    result = collect_local(["alpha"])
    (outcome,) = result.outcomes
    assert outcome.clean, "the workspace itself is read, stored and reported whole"
    failure = failure_of(result)
    assert f"1 file(s) in {folder} were not stored" in str(failure)
    assert (folder / "20200101T000000000000Z-acme-junk0000.unreadable").exists()
    code = exit_code_for_outcomes(result.outcomes, result.stopped_by, bool(result.spool_problem))
    assert code == ExitCode.EVIDENCE


class _DiskFailingReads:
    """`os` for the page bodies' temporary file, with reads that fail as a dying disk's do."""

    def __getattr__(self, name: str):
        return getattr(os, name)

    @staticmethod
    def pread(_fd: int, _length: int, _offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")


def test_a_disk_that_fails_under_the_page_bodies_leaves_a_failed_run_on_record(
    tmp_path, collect_local, bitbucket_env, monkeypatch
):
    from bb2sv.errors import ExitCode, exit_code_for_outcomes
    from tasks.bitbucket import spill
    from tasks.evidence.verification import verify_evidence

    monkeypatch.setattr(spill, "os", _DiskFailingReads())  # written whole, never read back
    result = collect_local(["alpha"])
    (outcome,) = result.outcomes
    assert (outcome.status, outcome.error_kind, outcome.pages_lost) == (
        RunStatus.FAILED, ErrorKind.CRASH, True,
    )  # fmt: skip
    assert "the pages read could not be kept" in outcome.error
    assert "Input/output error" in outcome.error and outcome.run_id and outcome.report_dir
    runs, pages = stored(tmp_path, "workspace, status, member_count")
    assert runs == [("alpha", "failed", 0)] and pages == 0  # tried, on record; nothing made up
    code = exit_code_for_outcomes(result.outcomes, result.stopped_by, bool(result.spool_problem))
    assert code == ExitCode.INCOMPLETE
    assert verify_evidence(tmp_path / "evidence.duckdb").ok


def _cut(pages) -> None:
    """Empty the temporary files that hold `pages`' bodies, as a full or failing disk can."""
    for spill in {page._held.spill for page in pages if page.body_on_disk}:
        os.ftruncate(spill._file.fileno(), 0)


def test_an_earlier_attempt_stored_without_its_pages_keeps_the_collection_from_being_whole(
    tmp_path, collect_local, bitbucket_env, monkeypatch
):
    import flows.collection as collection
    from bb2sv.errors import ExitCode, exit_code_for_outcomes

    emu = bitbucket_env
    emu.set_scenario(Scenario(html_errors=2, fault_listing="permissions", fault_workspace="alpha"))
    monkeypatch.setenv("BITBUCKET_MAX_ATTEMPTS", "2")  # two 502s end attempt 1
    read = collection.extract_attempt

    def first_read_then_lost(settings, attempt):
        extract = read(settings, attempt)
        if attempt.number == 1:
            _cut(extract.pages)
        return extract

    monkeypatch.setattr(collection, "extract_attempt", first_read_then_lost)
    result = collect_local(["alpha"])
    (outcome,) = result.outcomes
    assert outcome.complete and outcome.attempts == 2, "attempt 2 read alpha whole"
    assert outcome.pages_lost and not outcome.clean and not result.whole
    runs, _pages = stored(tmp_path, "status, error_kind, error")
    assert [(status, kind) for status, kind, _error in runs] == [
        ("failed", "transient"), ("complete", None),
    ]  # fmt: skip
    assert "the pages read could not be kept" in runs[0][2]
    code = exit_code_for_outcomes(result.outcomes, result.stopped_by, bool(result.spool_problem))
    assert code == ExitCode.INCOMPLETE


def test_a_directory_read_whole_but_lost_on_disk_is_the_collections_directory_problem(
    tmp_path, collect_local, bitbucket_env, monkeypatch
):
    import flows.collection as collection

    emu = bitbucket_env
    monkeypatch.setenv("ATLASSIAN_ORG_ID", emu.org_id)
    monkeypatch.setenv("ATLASSIAN_ADMIN_API_KEY", emu.admin_api_key)
    monkeypatch.setenv("ATLASSIAN_ADMIN_API_URL", emu.admin_api_url)
    read = collection.extract_directory_once

    def read_then_lost(*args, **kwargs):
        directory = read(*args, **kwargs)
        assert directory.status == "complete"
        _cut(directory.pages)
        return directory

    monkeypatch.setattr(collection, "extract_directory_once", read_then_lost)
    result = collect_local(["alpha"])
    (outcome,) = result.outcomes
    assert outcome.complete and outcome.directory_status == "failed"  # alpha itself is whole
    assert result.directory_problem.startswith("failed: the pages read could not be kept")
    assert "organization directory" in str(result.failure())
