"""The load's memory cap never costs a run: too big for the cap, it is stored uncapped."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from tasks.evidence import store as store_module
from tasks.evidence.store import EvidenceStore, memory_capped
from tasks.policy import DEFAULT_POLICY


def test_cap_is_lifted_after_the_load(db_path, synth):
    with EvidenceStore.open(db_path) as store:
        (before,) = store.conn.execute("select current_setting('memory_limit')").fetchall()[0]
        extract = synth.make_extract("acme", synth.synthetic_members(50), day=date(2026, 3, 1))
        store.record_run(extract, policy=DEFAULT_POLICY)
        (after,) = store.conn.execute("select current_setting('memory_limit')").fetchall()[0]
    assert after == before


def test_a_run_too_big_for_the_cap_is_still_stored(db_path, synth, monkeypatch):
    extract = synth.make_extract("acme", synth.synthetic_members(20_000), day=date(2026, 3, 1))
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(duckdb.OutOfMemoryException), memory_capped(store.conn, "1MB"):
            store.conn.execute("create temp table t as select range::varchar || repeat('x', 100) "
                               "as s from range(200000) order by s desc").fetchall()  # fmt: skip
        monkeypatch.setattr(store_module, "LOAD_MEMORY_LIMIT", "1MB")
        stored = store.record_run(extract, policy=DEFAULT_POLICY)
        counts = store.conn.execute(
            "select (select count(*) from member_2sv_observations), "
            "(select count(*) from raw_api_pages)"
        ).fetchall()[0]
    assert stored.member_count == 20_000
    assert counts == (20_000, len(extract.pages))
