"""How verify shares out its chunks of runs, and a chunk whose runs have no stored rows."""

from __future__ import annotations

from datetime import date

from tasks.evidence import page_checks, page_pool
from tasks.evidence.integrity import verify_chain
from tasks.evidence.page_checks import Chunk, RunPages
from tasks.evidence.page_pool import Stretches
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY


def _chunk(number: int, pages: int) -> Chunk:
    return Chunk(
        (RunPages(f"run-{number:03}", "w", number * 10, number * 10 + pages - 1, pages),), True
    )


def test_each_participant_works_through_its_own_stretch_then_helps_the_others():
    work = [_chunk(number, 10) for number in range(10)]
    stretches = Stretches(work, 2)
    # The first participant starts at the head of the chain, the second halfway.
    assert stretches.take(0) is work[0]
    assert stretches.take(1) is work[5]
    # One that has finished its stretch takes from the far end of the other's.
    taken = [stretches.take(1) for _ in range(4)]
    assert taken == work[6:10]
    assert stretches.take(1) is work[4]
    rest = []
    while (chunk := stretches.take(0)) is not None:
        rest.append(chunk)
    assert rest == work[1:4]
    assert stretches.take(1) is None


def test_every_chunk_is_given_out_exactly_once():
    work = [_chunk(number, 1 + number % 7) for number in range(50)]
    for parts in (1, 2, 3, 8):
        stretches = Stretches(work, parts)
        given = []
        participant = 0
        while (chunk := stretches.take(participant % parts)) is not None:
            given.append(chunk)
            participant += 1
        assert sorted(given, key=work.index) == work


def test_runs_without_any_stored_observation_are_checked(db_path, synth):
    """A chunk whose runs have no stored rows at all (failed runs, or every row deleted)."""
    with EvidenceStore.open(db_path) as store:
        for day in (1, 2):
            failed = synth.failed_extract(
                "acme", day=date(2026, 3, day), status_code=503, body=b"503", error="down"
            )
            store.record_run(failed, policy=DEFAULT_POLICY)
    assert verify_chain(db_path, workers=0).ok

    members = synth.synthetic_members(20)
    path = db_path.with_name("deleted.duckdb")
    with EvidenceStore.open(path) as store:
        extract = synth.make_extract("acme", members, day=date(2026, 3, 1))
        run_id = store.record_run(extract, policy=DEFAULT_POLICY).run_id
    conn = synth.plain_connect(path)
    conn.execute("DELETE FROM member_run_states")
    conn.close()
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == run_id
    assert "stored observations do not match" in result.summary()


def test_this_process_and_a_worker_find_what_one_process_finds(db_path, synth, monkeypatch):
    """Many small chunks, shared between this process and one worker process."""
    members = synth.synthetic_members(30)
    ids = []
    with EvidenceStore.open(db_path) as store:
        for day in range(1, 9):
            extract = synth.make_extract("acme", members, day=date(2026, 3, day))
            ids.append(store.record_run(extract, policy=DEFAULT_POLICY).run_id)
    conn = synth.plain_connect(db_path)
    conn.execute(
        "UPDATE member_run_states SET permission = 'owner' "
        f"WHERE run_id = '{ids[5]}' AND permission = 'member'"
    )
    conn.close()
    monkeypatch.setattr(page_pool, "chunks", lambda runs: page_checks.chunks(runs, max_pages=1))
    started = []
    monkeypatch.setattr(page_pool, "_Worker", _counted(page_pool._Worker, started))
    in_process = verify_chain(db_path, workers=0)
    assert not started
    shared = verify_chain(db_path, workers=2)
    assert len(started) == 1  # this process is the other
    assert shared.problems == in_process.problems
    assert {problem.run_id for problem in shared.problems} == {ids[5]}


def _counted(worker_class, started: list):
    class Counted(worker_class):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    return Counted
