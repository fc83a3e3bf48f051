"""The cost of adding run N to a file of one 10,000-member workspace, as history grows.

    python benchmarks/history.py 10000 1000    → one JSON line of figures

Every run is stored by `EvidenceStore.record_run`, the collection's own code path, one
simulated day per run, pages from the emulator's world and payload code without HTTP
(`emulator.offline`). The file is built once, up to the largest N, and copied when it holds
N - 1 runs for each N measured. Then runs N, N+1, … N+4 are added to each copy, the copies
taking turns, so that a machine whose load drifts during the long build (others share it)
weighs on every N alike; the cost at N is the median of its five (wall seconds, and CPU
seconds of this process, DuckDB's threads included). Also: file bytes per member-day (raw
pages included) after the build.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path, as for the other scripts)

from emulator.offline import make_extract
from emulator.world import WorkspaceSpec
from tasks.evidence.store import EvidenceStore
from tasks.heap import freeze_imported_objects
from tasks.policy import DEFAULT_POLICY

AT = (10, 100, 1000)
REPEATS = 5
START = date(2024, 1, 1)


def main(members: int, runs: int) -> dict:
    freeze_imported_objects()  # as the commands do once they have imported (tasks/heap.py)
    spec = WorkspaceSpec("history", members=members, seed=7)
    at = [n for n in AT if n <= runs]

    def extract(n: int):  # run n reads day n
        return make_extract(spec, day=START + timedelta(days=n - 1), emulated=True)

    figures: dict[str, object] = {"members": members, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "evidence.duckdb"
        copies = {n: Path(tmp) / f"before_{n}.duckdb" for n in at}
        store = EvidenceStore.open(db)
        started = time.perf_counter()
        for n in range(1, runs + 1):
            if n in copies:  # holds n - 1 runs
                store.close()
                shutil.copyfile(db, copies[n])
                store = EvidenceStore.open(db)
            store.record_run(extract(n), policy=DEFAULT_POLICY)
        store.close()
        figures["build_s"] = time.perf_counter() - started
        figures["bytes_per_member_day"] = db.stat().st_size / (members * runs)
        wall: dict[int, list[float]] = {n: [] for n in at}
        cpu: dict[int, list[float]] = {n: [] for n in at}
        stores = {n: EvidenceStore.open(copies[n]) for n in at}
        try:
            for repeat in range(REPEATS):
                for n in at:
                    run = extract(n + repeat)
                    started, used = time.perf_counter(), time.process_time()
                    stores[n].record_run(run, policy=DEFAULT_POLICY)
                    wall[n].append(time.perf_counter() - started)
                    cpu[n].append(time.process_time() - used)
        finally:
            for opened in stores.values():
                opened.close()
    for n in at:
        figures[f"run_{n}_s"] = statistics.median(wall[n])
        figures[f"run_{n}_cpu_s"] = statistics.median(cpu[n])
    return figures


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
