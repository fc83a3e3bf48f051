"""The cost of adding run N to a file of one 10,000-member workspace, as history grows.

    python benchmarks/history.py 10000 1000    → one JSON line of figures

Every run is stored by `EvidenceStore.record_run`, the collection's own code path, one
process and one open store for the whole build (as a long-lived deployment would be; the
checkpoint at each commit is included). Pages come from the emulator's world and payload
code without HTTP (`emulator.offline`), one simulated day per run; only `record_run` is
timed. The cost at N is the median of runs N-2..N+2 (single runs are noisy on a shared
machine). Also: file bytes per member-day (raw pages included) at the end.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from common import Timer

from emulator.offline import make_extract
from emulator.world import WorkspaceSpec
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

AT = (10, 100, 1000)


def main(members: int, runs: int) -> dict:
    spec = WorkspaceSpec("history", members=members, seed=7)
    start = date(2024, 1, 1)
    seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "evidence.duckdb"
        with EvidenceStore.open(db) as store:
            for n in range(1, runs + 1):
                extract = make_extract(spec, day=start + timedelta(days=n - 1), emulated=True)
                with Timer() as loaded:
                    store.record_run(extract, policy=DEFAULT_POLICY)
                seconds[n] = loaded.seconds
        size = db.stat().st_size
    figures: dict[str, object] = {"members": members, "runs": runs}
    for n in AT:
        window = [seconds[k] for k in range(n - 2, n + 3) if k in seconds]
        if window:
            figures[f"run_{n}_s"] = statistics.median(window)
    figures["bytes_per_member_day"] = size / (members * runs)
    figures["total_load_s"] = sum(seconds.values())
    return figures


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
