"""How many threads DuckDB runs for bb2sv: one on a small or new evidence file (its queries
end before a second thread helps), DuckDB's thread per core on a larger one, and one for
the digests of a new run."""

from __future__ import annotations

import duckdb

from tasks.evidence import connection, hashing
from tasks.evidence.store import EvidenceStore


def threads(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("SELECT current_setting('threads')").fetchone()[0]


def test_a_small_file_is_created_written_and_read_on_one_thread(db_path):
    with EvidenceStore.open(db_path) as created:
        assert threads(created.conn) == 1
    with EvidenceStore.open(db_path) as writer:
        assert threads(writer.conn) == 1
    with EvidenceStore.open(db_path, read_only=True) as reader:
        assert threads(reader.conn) == 1


def test_a_larger_file_keeps_a_thread_per_core(db_path, monkeypatch):
    """Its databases are made without a thread count, so DuckDB gives a thread per core
    (checked on what DuckDB is asked for: a one-core machine has one thread either way)."""
    EvidenceStore.open(db_path).close()
    asked: list[dict] = []
    connect = duckdb.connect

    def recording(database=":memory:", read_only=False, config=None):
        asked.append(dict(config or {}))
        return connect(database, read_only=read_only, config=config or {})

    monkeypatch.setattr(duckdb, "connect", recording)
    with duckdb.connect() as fresh:
        per_core = threads(fresh)
    monkeypatch.setattr(connection, "ONE_THREAD_BELOW_BYTES", db_path.stat().st_size)
    with EvidenceStore.open(db_path) as writer:
        assert threads(writer.conn) == per_core
    with EvidenceStore.open(db_path, read_only=True) as reader:
        assert threads(reader.conn) == per_core
    assert len(asked) >= 3 and not [config for config in asked if "threads" in config]
    monkeypatch.setattr(connection, "ONE_THREAD_BELOW_BYTES", db_path.stat().st_size + 1)
    asked.clear()
    EvidenceStore.open(db_path, read_only=True).close()
    assert [config.get("threads") for config in asked] == [1]


def test_the_digests_run_on_one_thread():
    assert threads(hashing._private_database()) == 1
