"""A new run's digests are computed in the process's private in-memory database, one
connection per call: from several threads, or in a forked child, they are the same."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date

import duckdb
import pytest

from tasks.bitbucket.models import RawPage
from tasks.evidence import frames, hashing
from tasks.evidence.errors import EvidenceError, IntegrityError
from tasks.evidence.store import EvidenceStore
from tasks.normalise import observations_table
from tasks.policy import DEFAULT_POLICY


def _tables(synth, workspace: str, members: int):
    extract = synth.make_extract(workspace, synth.synthetic_members(members), day=date(2026, 3, 1))
    run_id = f"run-{workspace}"
    observed = frames.observations_table(run_id, observations_table(workspace, extract.pages))
    return run_id, frames.pages_table(run_id, extract.pages), observed


def _digests_in_child(args, queue) -> None:
    queue.put(hashing.run_digests_apart(*args))


def test_threads_and_a_forked_child_get_the_digests_of_a_fresh_database(synth):
    runs = [_tables(synth, f"ws{n}", 40 + 30 * n) for n in range(4)]
    alone = []
    for run_id, pages, observed in runs:  # what a database of its own per call gave
        conn = hashing.in_memory()
        conn.register("_bb2sv_pages", pages)
        conn.register("_bb2sv_obs", observed)
        alone.append(
            hashing.RunDigests(
                *(
                    hashing.digests(conn, kind, relation)[run_id]
                    for kind, relation in (
                        ("raw", "_bb2sv_pages"),
                        ("observations", "_bb2sv_obs"),
                        ("identity", "_bb2sv_obs"),
                    )
                )
            )
        )
        conn.close()
    assert len(set(alone)) == len(runs)  # different runs, different digests

    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(lambda run: hashing.run_digests_apart(*run), runs)) == alone

    hashing.run_digests_apart(*runs[0])  # the parent's database exists before the fork
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=_digests_in_child, args=(runs[1], queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == alone[1]

    # Nothing a call registered stays behind in the shared database.
    leftover = hashing._private_database().cursor()
    views = leftover.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall()
    assert views == [(0,)]
    leftover.close()


def test_a_store_that_fails_leaves_no_digest_thread_behind(db_path, synth, monkeypatch):
    digests = hashing.run_digests_apart

    def slow_digests(*args):  # as a large run's: still at work when the store fails
        time.sleep(0.5)
        return digests(*args)

    monkeypatch.setattr(hashing, "run_digests_apart", slow_digests)
    extract = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 1))
    page = extract.pages[0]
    forged = RawPage(page.listing, page.url, 200, page.fetched_at, page.body, sha256="0" * 64)
    with EvidenceStore.open(db_path) as store, pytest.raises(IntegrityError):
        store.record_run(
            replace(extract, pages=[forged, *extract.pages[1:]]), policy=DEFAULT_POLICY
        )
    assert not [t for t in threading.enumerate() if t.name.startswith("bb2sv-digests")]


def test_a_failure_of_the_digests_is_not_blamed_on_the_evidence_file(db_path, synth, monkeypatch):
    def out_of_memory(*_args):  # what the private database raises when memory runs out
        raise duckdb.OutOfMemoryException("failed to allocate data of size 64.0 MiB")

    monkeypatch.setattr(hashing, "run_digests_apart", out_of_memory)
    extract = synth.make_extract("acme", synth.synthetic_members(30), day=date(2026, 3, 1))
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(EvidenceError) as raised:
            store.record_run(extract, policy=DEFAULT_POLICY)
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]
    message = str(raised.value)
    assert message.startswith("Could not compute the digests of the acme run (in memory")
    assert "64.0 MiB" in message and str(db_path) not in message
