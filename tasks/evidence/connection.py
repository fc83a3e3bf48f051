"""Opening DuckDB connections to an evidence file: settings, lock waiting, error translation.

Every connection gets the same config, because DuckDB refuses a second connection to a file
with a different one inside the same process::

    conn = connect(Path("evidence.duckdb"), read_only=True, lock_timeout_s=5)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb

from tasks.evidence.errors import EvidenceCorrupt, EvidenceError, EvidenceLocked

# Nothing may be downloaded at run time, and new files must stay readable by DuckDB 1.4
# (a file created by 2.0 with defaults is storage version 999, which 1.4 refuses).
CONNECTION_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "storage_compatibility_version": "v1.4.0",
}

DEFAULT_LOCK_TIMEOUT_S = 30.0

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<process>.*?) \(PID (?P<pid>\d+)\)")
DUCKDB_MAGIC = b"DUCK"


def connect(
    path: Path, *, read_only: bool, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open `path`, waiting up to `lock_timeout_s` while another process holds the lock."""
    deadline = time.monotonic() + lock_timeout_s
    pause = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only, config=CONNECTION_CONFIG)
        except duckdb.IOException as exc:
            holder = _LOCK_HOLDER.search(str(exc))
            if "Could not set lock" not in str(exc):
                raise translate(exc, path, action="open") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise locked_error(path, holder, lock_timeout_s) from None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)
            continue
        except duckdb.Error as exc:
            raise translate(exc, path, action="open") from None
        conn.execute("SET TimeZone = 'UTC'")
        # An index scan on raw_api_pages(run_id, seq) fetches blobs row by row, which takes
        # ~30 s for a 2,000-page run in duckdb 2.0.1; a filtered table scan takes 0.2 s.
        conn.execute("SET index_scan_max_count = 0")
        return conn


def locked_error(path: Path, holder: re.Match | None, waited_s: float) -> EvidenceLocked:
    pid = int(holder["pid"]) if holder else None
    process = holder["process"] if holder else None
    who = f"{process} (PID {pid})" if holder else "another process"
    return EvidenceLocked(
        f"Evidence file {path} is locked by {who}; waited {waited_s:g} s. "
        "Only one bb2sv writer may use the file at a time: wait for that run to finish, "
        "or stop that process if it is stuck, then try again.",
        pid=pid,
        process=process,
    )


def translate(exc: duckdb.Error, path: Path, *, action: str) -> EvidenceError:
    """Turn a DuckDB exception into an EvidenceError whose text says what to do."""
    text = str(exc)
    if "not a valid DuckDB database file" in text or "Corrupt database file" in text:
        return EvidenceCorrupt(
            f"Evidence file {path} is damaged ({_first_line(text)}). Restore it from a backup; "
            "the file was left unchanged."
        )
    if "Could not read enough bytes" in text:
        return EvidenceCorrupt(
            f"Evidence file {path} is truncated ({_first_line(text)}). Restore it from a "
            "backup; the file was left unchanged."
        )
    if "different configuration" in text:
        return EvidenceError(
            f"Evidence file {path} is already open in this process with other settings "
            "(read-only vs writable). Close the other EvidenceStore first."
        )
    return EvidenceError(f"Could not {action} evidence file {path}: {_first_line(text)}")


def has_duckdb_header(path: Path) -> bool:
    """A DuckDB file starts with an 8-byte checksum followed by the magic bytes `DUCK`."""
    with path.open("rb") as handle:
        head = handle.read(12)
    return len(head) == 12 and head[8:12] == DUCKDB_MAGIC


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else type(text).__name__
