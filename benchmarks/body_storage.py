"""What one run's page bodies cost DuckDB as the store writes them, ten ways.

    python benchmarks/body_storage.py 100000     → one JSON line per way

Not part of `make bench`: it measures options for the store (issue 13's memory target at
100,000 members), not bb2sv as it is. The bodies are the emulator's own pages for N members
(`emulator.offline`, no HTTP), written once to a spill file; each way then runs in a fresh
process, which reads them back and stores them in a new file in one transaction, its commit
a checkpoint as the store's (`creation.commit_by_checkpoint`). Figures: DuckDB's memory above
the process's before the transaction (at the commit and at its peak), seconds, file size.

- `whole`: as the store did before 0.5: each body one BLOB, bound 50 rows per INSERT.
- `zlib`: the same, each body compressed by Python first (zlib level 1, timed apart as
  `compress_s`; plain DuckDB cannot expand it: bb2sv's readers do).
- `zlib_uncompressed`: as the store does since 0.5 (migration 0008): `zlib` into a column
  declared `USING COMPRESSION uncompressed`, so DuckDB's checkpoint does not look for
  compression in zlib data.
- `parts`: each body in 16 KiB parts (`sha256, part, bytes`), one INSERT ... SELECT from an
  Arrow stream that reads the spill file a body at a time.
- `parts_rg2048`: the same into a file attached with ROW_GROUP_SIZE 2048: DuckDB writes
  each full row group of the transaction to the file as it goes (optimistic writes), where
  with the default size (122,880 rows) it keeps them all in memory until the commit. The
  size is the attachment's, so every table written through it gets such row groups.
- `whole_in_batches`: whole BLOBs as today, but committed 50 bodies at a time, each commit a
  transaction of its own (not the run's one transaction: a crash would leave bodies no run
  refers to).
- `whole_buffer_1`, `parts_rg2048_buffer_1`: as `whole` and `parts_rg2048`, with DuckDB's
  `write_buffer_row_group_count` at 1 (full row groups are written ahead one at a time).
- `whole_limit_250mb`, `parts_limit_128mb`: as `whole` and `parts`, under a `memory_limit`
  (DuckDB may then move the transaction's data to its temporary folder). A way whose commit
  fails prints its error instead of figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

WAYS = (
    "whole",
    "zlib",
    "zlib_uncompressed",
    "parts",
    "parts_rg2048",
    "whole_in_batches",
    "whole_buffer_1",
    "parts_rg2048_buffer_1",
    "whole_limit_250mb",
    "parts_limit_128mb",
)
PART_BYTES = 16 * 1024  # 4 KiB parts made the file 5 times larger, 64 KiB ones held 10x more
ROWS_PER_INSERT = 50


def spill_bodies(members: int, spill: Path) -> list[tuple[int, int]]:
    """The emulator's pages for `members` written one after the other; (offset, length)."""
    from emulator.offline import make_extract
    from emulator.world import WorkspaceSpec

    extract = make_extract(WorkspaceSpec("bench", members=members, seed=7), day=date(2026, 11, 1))
    places = []
    with spill.open("wb") as out:
        for page in extract.pages:
            places.append((out.tell(), len(page.body)))
            out.write(page.body)
    return places


class PeakRss:
    """The process's resident memory, sampled every few milliseconds on a thread."""

    def __init__(self) -> None:
        self.peak = self.now()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def now() -> float:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(0.003)

    def since(self, base: float) -> float:
        return self.peak - base


def store(way: str, spill: Path, places: list[tuple[int, int]], db: Path) -> dict:
    """One way, in this process: figures as a dict."""
    # Read (and compressed) a body at a time, as pages arrive: holding them all whole first
    # would free ~200 MB that DuckDB then reuses, and its own memory would not show.
    compressing = time.perf_counter()
    with spill.open("rb") as source:
        if "parts" in way:
            bodies = []
        elif way.startswith("zlib"):
            bodies = [zlib.compress(source.read(length), 1) for _offset, length in places]
        else:
            bodies = [source.read(length) for _offset, length in places]
    compress_s = time.perf_counter() - compressing if way.startswith("zlib") else 0.0
    memory = PeakRss()
    time.sleep(0.05)
    base = memory.peak = memory.now()
    conn = duckdb.connect(config={"autoinstall_known_extensions": False})
    options = "ROW_GROUP_SIZE 2048, " if way.startswith("parts_rg2048") else ""
    conn.execute(f"ATTACH '{db}' AS evidence ({options}STORAGE_VERSION 'v1.4.0')")
    conn.execute("USE evidence")
    conn.execute("SET checkpoint_threshold = '1KB'")  # as creation.commit_by_checkpoint
    conn.execute("SET auto_checkpoint_skip_wal_threshold = 1")
    if way.endswith("_buffer_1"):
        conn.execute("SET write_buffer_row_group_count = 1")
    if "_limit_" in way:
        conn.execute(f"SET temp_directory = '{db}.tmp'")
        conn.execute(f"SET memory_limit = '{way.rsplit('_', 1)[1].upper()}'")
    started = time.perf_counter()
    if way == "whole_in_batches":
        _insert_whole(conn, bodies)  # autocommit: a transaction, and a checkpoint, per INSERT
    conn.execute("BEGIN TRANSACTION")
    if "parts" in way:
        conn.execute("CREATE TABLE bodies (sha256 VARCHAR, part INTEGER, bytes BLOB)")
        stream = _parts_stream(spill, places)  # noqa: F841 (read by the SQL below)
        conn.execute("INSERT INTO bodies SELECT * FROM stream")
    elif way != "whole_in_batches":
        _insert_whole(conn, bodies, stored_as_is=way == "zlib_uncompressed")
    inserted = time.perf_counter() - started
    before_commit = memory.since(base)
    conn.execute("COMMIT")
    total = time.perf_counter() - started
    conn.close()
    return {
        "way": way,
        "bodies_mb": round(sum(length for _o, length in places) / 1e6, 1),
        "memory_peak_before_commit_mib": round(before_commit),
        "memory_peak_mib": round(memory.since(base)),
        "insert_s": round(inserted, 2),
        "insert_and_commit_s": round(total, 2),
        "file_mb": round(db.stat().st_size / 1e6, 1),
        "compress_s": round(compress_s, 2),
    }


def _insert_whole(
    conn: duckdb.DuckDBPyConnection, bodies: list[bytes], *, stored_as_is: bool = False
) -> None:
    """Each body one BLOB row, ROWS_PER_INSERT bound per statement, as the store does."""
    compression = " USING COMPRESSION uncompressed" if stored_as_is else ""
    conn.execute(f"CREATE TABLE bodies (sha256 VARCHAR, body BLOB{compression})")
    for start in range(0, len(bodies), ROWS_PER_INSERT):
        rows = bodies[start : start + ROWS_PER_INSERT]
        conn.execute(
            "INSERT INTO bodies VALUES " + ", ".join(["(?, ?)"] * len(rows)),
            [value for n, body in enumerate(rows, start) for value in (str(n), body)],
        )


def _parts_stream(spill: Path, places: list[tuple[int, int]]) -> pa.RecordBatchReader:
    schema = pa.schema([("sha256", pa.string()), ("part", pa.int32()), ("bytes", pa.binary())])

    def batches():
        with spill.open("rb") as source:
            for number, (offset, length) in enumerate(places):
                source.seek(offset)
                body = source.read(length)
                parts = [body[at : at + PART_BYTES] for at in range(0, len(body), PART_BYTES)]
                yield pa.record_batch(
                    [
                        pa.array([str(number)] * len(parts), pa.string()),
                        pa.array(range(len(parts)), pa.int32()),
                        pa.array(parts, pa.binary()),
                    ],
                    schema=schema,
                )

    return pa.RecordBatchReader.from_batches(schema, batches())


def main(members: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bb2sv-bench-") as folder:
        spill = Path(folder) / "bodies.bin"
        (Path(folder) / "places.json").write_text(json.dumps(spill_bodies(members, spill)))
        for way in WAYS:
            done = subprocess.run(
                [sys.executable, __file__, "--way", way, folder],
                check=False, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode == 0:
                print(done.stdout.strip(), flush=True)
            else:  # its error: e.g. a commit DuckDB could not fit in its memory limit
                lines = done.stderr.strip().splitlines() or ["?"]
                error = next((line for line in reversed(lines) if "Error" in line), lines[-1])
                print(json.dumps({"way": way, "error": error[:300]}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--way":
        folder = Path(sys.argv[3])
        places = [tuple(place) for place in json.loads((folder / "places.json").read_text())]
        db = folder / f"{sys.argv[2]}.duckdb"
        print(json.dumps(store(sys.argv[2], folder / "bodies.bin", places, db)))
        os.remove(db)
    else:
        main(int(sys.argv[1]))
