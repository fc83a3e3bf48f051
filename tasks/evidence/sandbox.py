"""Read-only connections that run only the SQL bb2sv ships, and nothing that touches other
files.

    conn = open_sandboxed(Path("evidence.duckdb"), lock_timeout_s=30)
    conn.sql("SELECT * FROM daily_compliance")   # the shipped view over the file's tables

The evidence file is ATTACHed read-only as `evidence` into a private in-memory database,
beside the readers' catalog (`catalog.reader_catalog`, attached read-only as `bb2sv`): a
pass-through view per evidence table and the shipped views and macros. That catalog is the
current database (`catalog.create_shipped`); the file's catalog is not on the search path,
so names, functions and macros resolve to bb2sv's definitions and DuckDB's built-ins, never
to something stored in the file. Then the connection is locked down: no file access beyond
the attached file (`enable_external_access=false`: no read_text, COPY, ATTACH, INSTALL or
LOAD) and `lock_configuration=true`, so SQL cannot turn that back on. Reports, `bb2sv
query`, events and verify all read this way. A reader's connection has one function of
bb2sv's own: it expands a compressed page body for `raw_api_pages`
(`page_bodies.checked_page_body`: bounded in size, and NULL unless it hashes to its name).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from tasks.evidence.catalog import EVIDENCE, SHIPPED, create_shipped, reader_catalog
from tasks.evidence.connection import (
    closed_on_failure,
    in_memory,
    is_small,
    path_literal,
    wait_for_lock,
)
from tasks.evidence.page_bodies import give_page_body_function

__all__ = ["attach", "open_sandboxed", "sandbox"]


def open_sandboxed(
    path: Path, *, lock_timeout_s: float, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """The file attached read-only under the shipped catalog, locked down (see above)."""
    attached = attach(path, read_only=True, lock_timeout_s=lock_timeout_s)
    return sandbox(attached, path, threads=threads)


def sandbox(
    conn: duckdb.DuckDBPyConnection, path: Path, *, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only `attach` connection given the shipped catalog, then locked down."""
    with closed_on_failure(conn, path):
        if threads is not None:
            conn.execute(f"SET threads = {int(threads)}")
        create_shipped(conn)
        conn.execute("SET lock_configuration = true")
    return conn


def attach(path: Path, *, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    """A private in-memory database with the file attached as `evidence` (read-only, or
    writable for the one writer) and no file access beyond it; its configuration still
    open. The file's catalog is not on the search path: a read-only one also has the
    readers' catalog attached, which `sandbox` makes current; the writer says
    `USE evidence` once it has inspected the file."""
    catalog = reader_catalog() if read_only else None  # built once per process
    # External access only until the files are attached.
    conn = in_memory(external_access=True, one_thread=is_small(path))
    mode = " (READ_ONLY)" if read_only else ""
    with closed_on_failure(conn, path):
        wait_for_lock(
            lambda: conn.execute(f"ATTACH {path_literal(path)} AS {EVIDENCE}{mode}"),
            path,
            lock_timeout_s,
        )
        if catalog is not None:
            conn.execute(f"ATTACH {path_literal(catalog)} AS {SHIPPED} (READ_ONLY)")
            give_page_body_function(conn)
        # Spill where a connection to the file would (next to it), not the cwd.
        conn.execute(f"SET temp_directory = {path_literal(Path(f'{path}.tmp'))}")
        conn.execute("SET enable_external_access = false")
    return conn
