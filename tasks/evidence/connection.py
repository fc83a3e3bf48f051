"""Opening DuckDB connections to an evidence file: settings, lock waiting, error translation.

Every connection gets the same config, because DuckDB refuses a second connection to a file
with a different one inside the same process::

    conn = connect(Path("evidence.duckdb"), read_only=True, lock_timeout_s=5)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from tasks.evidence.errors import EvidenceCorrupt, EvidenceError, EvidenceLocked, holder_text

# Nothing may be downloaded at run time, and new files must stay readable by DuckDB 1.4
# (a file created by 2.0 with defaults is storage version 999, which 1.4 refuses).
# No connection may touch other files either: SQL that someone planted in the file (a macro
# named like a built-in, a view) runs with the connection's rights, and must not be able to
# read a key file or write elsewhere. The database file itself and DuckDB's own temporary
# files stay usable.
CONNECTION_CONFIG: dict[str, str | bool] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "enable_external_access": False,
    "storage_compatibility_version": "v1.4.0",
}

DEFAULT_LOCK_TIMEOUT_S = 30.0

# DuckDB runs each query on a thread per core. On a small evidence file the queries are over
# before a second thread helps: it only adds CPU (the test suite's ~120 small files: ~6 % of
# its CPU, the same time per query). Larger files keep a thread per core, for their history's
# sake: at 10,000 members × 30 days (11 MB), `findings` took 0.26 s on one thread, 0.18 s on
# two. One 100,000-member run loads no slower on one (1.73 s; 1.85 s on two).
ONE_THREAD_BELOW_BYTES = 8 * 2**20

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<process>.*?) \(PID (?P<pid>\d+)\)")
DUCKDB_MAGIC = b"DUCK"


Opened = TypeVar("Opened")


def in_memory(
    *, external_access: bool = False, one_thread: bool = False
) -> duckdb.DuckDBPyConnection:
    """A private in-memory database with the same settings. `external_access` only for the
    moment it must ATTACH an evidence file: the caller turns it off right after.
    `one_thread`: for a small file (`is_small`); set when the database is made, it also
    spares starting DuckDB's other threads (~3 ms)."""
    config = {**CONNECTION_CONFIG, "enable_external_access": external_access}
    if one_thread:
        config["threads"] = 1
    del config["storage_compatibility_version"]  # no file of its own
    conn = duckdb.connect(":memory:", config=config)
    apply_session_settings(conn)
    return conn


def connect(
    path: Path, *, read_only: bool, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open `path`, waiting up to `lock_timeout_s` while another process holds the lock."""
    config = {**CONNECTION_CONFIG, **({"threads": 1} if is_small(path) else {})}
    conn = wait_for_lock(
        lambda: duckdb.connect(str(path), read_only=read_only, config=config),
        path,
        lock_timeout_s,
    )
    apply_session_settings(conn)
    return conn


def is_small(path: Path) -> bool:
    """Whether `path` is a new or small evidence file (ONE_THREAD_BELOW_BYTES)."""
    try:
        return path.stat().st_size < ONE_THREAD_BELOW_BYTES
    except OSError:
        return True  # not created yet


def apply_session_settings(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("SET TimeZone = 'UTC'")
    # No table holding page bodies has an index today (migration 0003 dropped the key of
    # the old raw_api_pages table). An index scan fetches rows one at a time: for a
    # 2,000-page run's blobs it took ~30 s in duckdb 2.0.1, a filtered table scan 0.2 s.
    # Kept off, so a key added later cannot bring that back.
    conn.execute("SET index_scan_max_count = 0")
    # A long migration (upgrading a year of pages takes seconds) would otherwise draw
    # DuckDB's progress bar over the CLI's output.
    conn.execute("SET enable_progress_bar = false")


def wait_for_lock(open_once: Callable[[], Opened], path: Path, lock_timeout_s: float) -> Opened:
    """`open_once()` (a connect or an ATTACH of `path`), retried while another process holds
    the file's lock, for up to `lock_timeout_s`; DuckDB errors become EvidenceErrors."""
    deadline = time.monotonic() + lock_timeout_s
    pause = 0.05
    while True:
        try:
            return open_once()
        except duckdb.IOException as exc:
            holder = _LOCK_HOLDER.search(str(exc))
            if "Could not set lock" not in str(exc):
                raise translate(exc, path, action="open") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise locked_error(path, holder, lock_timeout_s) from None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)
        except duckdb.Error as exc:
            raise translate(exc, path, action="open") from None


def locked_error(path: Path, holder: re.Match | None, waited_s: float) -> EvidenceLocked:
    pid = int(holder["pid"]) if holder else None
    process = holder["process"] if holder else None
    return EvidenceLocked(
        f"Evidence file {path} is locked by {holder_text(process, pid)}; waited "
        f"{waited_s:g} s. Only one bb2sv writer may use the file at a time: wait for that run "
        "to finish, or stop that process if it is stuck, then try again.",
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
    if "different configuration" in text or "Unique file handle conflict" in text:
        return EvidenceError(
            f"Evidence file {path} is already open in this process with other settings "
            "(read-only vs writable). Close the other EvidenceStore first."
        )
    return EvidenceError(f"Could not {action} evidence file {path}: {_first_line(text)}")


def path_literal(path: Path) -> str:
    """A path as an SQL string literal (ATTACH and SET take no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def has_duckdb_header(path: Path) -> bool:
    """A DuckDB file starts with an 8-byte checksum followed by the magic bytes `DUCK`."""
    with path.open("rb") as handle:
        head = handle.read(12)
    return len(head) == 12 and head[8:12] == DUCKDB_MAGIC


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else type(text).__name__


@contextmanager
def closed_on_failure(
    conn: duckdb.DuckDBPyConnection, path: Path, *, action: str = "open"
) -> Iterator[None]:
    """Close `conn` if the block fails; a DuckDB error becomes an EvidenceError saying what
    could not be done (`action`) to `path`."""
    try:
        yield
    except BaseException as exc:
        conn.close()
        if isinstance(exc, duckdb.Error):
            raise translate(exc, path, action=action) from None
        raise
