"""One writer at a time, bounded lock waits, and no partial run after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest

from tasks.evidence.errors import EvidenceLocked
from tasks.evidence.integrity import verify_chain
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from tasks.evidence.store import EvidenceStore
store = EvidenceStore.open(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
releasing = time.monotonic()  # still held: one clock for every process (CLOCK_MONOTONIC)
store.close()
print("released", releasing, flush=True)
"""

KILLED_MID_LOAD = """
import sys, time
from datetime import date
from emulator.offline import make_extract, synthetic_members
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

class PausingStore(EvidenceStore):
    def _insert(self, *args):
        super()._insert(*args)  # every row written, transaction still open
        print("inserted", flush=True)
        time.sleep(120)

store = PausingStore.open(sys.argv[1])
extract = make_extract("big", synthetic_members(20_000), day=date(2026, 3, 3))
store.record_run(extract, policy=DEFAULT_POLICY)
"""


def start(script: str, *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    return process


def wait_for(process: subprocess.Popen, word: str) -> None:
    line = process.stdout.readline()
    assert word in line, f"child said {line!r}"


@pytest.mark.parametrize("read_only", [False, True])
def test_lock_held_by_another_process_fails_clearly_after_the_timeout(db_path, read_only):
    EvidenceStore.open(db_path).close()
    holder = start(HOLD, str(db_path), "30")
    try:
        wait_for(holder, "holding")
        began = time.monotonic()
        with pytest.raises(EvidenceLocked) as caught:
            EvidenceStore.open(db_path, read_only=read_only, lock_timeout_s=1.0)
        waited = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    assert 0.8 <= waited < 5
    assert caught.value.pid == holder.pid
    assert f"PID {holder.pid}" in str(caught.value) and "try again" in str(caught.value)


def test_writer_waits_for_the_lock_to_be_released(db_path):
    EvidenceStore.open(db_path).close()
    holder = start(HOLD, str(db_path), "0.8")
    try:
        wait_for(holder, "holding")
        asked = time.monotonic()
        with EvidenceStore.open(db_path, lock_timeout_s=15) as store:
            opened = time.monotonic()
            assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]
        word, releasing = holder.stdout.readline().split()
    finally:
        holder.wait()
    # Asked while the file was held, opened once it was let go: it waited for the release.
    assert word == "released" and asked < float(releasing) < opened


def test_sigkill_mid_transaction_leaves_no_partial_run(db_path, synth):
    with EvidenceStore.open(db_path) as store:
        for day in (1, 2):
            extract = synth.make_extract(
                "acme", synth.synthetic_members(120), day=date(2026, 3, day)
            )
            store.record_run(extract, policy=DEFAULT_POLICY)
    loader = start(KILLED_MID_LOAD, str(db_path))
    try:
        wait_for(loader, "inserted")
        os.kill(loader.pid, signal.SIGKILL)
    finally:
        loader.wait()
    assert loader.returncode == -signal.SIGKILL
    with EvidenceStore.open(db_path) as store:
        runs = store.conn.execute(
            "SELECT workspace, count(*) FROM collection_runs GROUP BY ALL"
        ).fetchall()
        orphans = store.conn.execute(
            "SELECT (SELECT count(*) FROM raw_api_pages WHERE run_id NOT IN "
            "(SELECT run_id FROM collection_runs)), (SELECT count(*) FROM "
            "member_2sv_observations WHERE workspace = 'big')"
        ).fetchall()
        again = store.record_run(
            synth.make_extract("acme", synth.synthetic_members(10), day=date(2026, 3, 4)),
            policy=DEFAULT_POLICY,
        )
    assert runs == [("acme", 2)]
    assert orphans == [(0, 0)]
    result = verify_chain(db_path)
    assert result.ok and result.runs_checked == 3, result.summary()
    assert again.status == "complete"
