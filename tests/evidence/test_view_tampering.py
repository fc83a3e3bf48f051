"""Views and macros are code: what someone stores in the file never changes what bb2sv reads,
and verify names every object that differs from the shipped catalog."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.evidence.catalog import catalog_problems
from tasks.evidence.connection import connect
from tasks.evidence.errors import IntegrityError
from tasks.evidence.integrity import verify_chain
from tasks.evidence.query import run_query
from tasks.evidence.schema import migrate
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

REAL_SHA256_OF_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


@pytest.fixture(scope="module")
def built(tmp_path_factory, synth):
    """Two complete days of 50 members: 44 with 2SV, 5 disabled, 1 unknown (88 %)."""
    path = tmp_path_factory.mktemp("views") / "evidence.duckdb"
    with EvidenceStore.open(path) as store:
        for day in (1, 2):
            members = synth.synthetic_members(50)
            store.record_run(
                synth.make_extract("acme", members, day=date(2026, 3, day)), policy=DEFAULT_POLICY
            )
    return path


@pytest.fixture
def filled(built, db_path, synth):
    return synth.copy_file(built, db_path)  # each test tampers with its own copy


def tamper(db_path, synth, *statements: str) -> None:
    conn = synth.plain_connect(db_path)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def problems_of(db_path) -> list[str]:
    with EvidenceStore.open(db_path, read_only=True) as store:
        return catalog_problems(store.conn)


def test_untouched_and_upgraded_files_match_the_shipped_catalog(filled, tmp_path):
    assert problems_of(filled) == []
    old = tmp_path / "old.duckdb"
    conn = connect(old, read_only=False)
    migrate(conn, target=1)
    conn.close()
    EvidenceStore.open(old).close()  # upgraded to the latest schema on a writable open
    assert problems_of(old) == []


def test_a_replaced_view_is_not_used_and_is_named(filled, synth):
    honest = run_query(filled, "SELECT day, compliance_pct FROM daily_compliance ORDER BY day")
    tamper(
        filled,
        synth,
        "CREATE OR REPLACE VIEW daily_compliance AS "
        "SELECT DATE '2026-03-01' AS day, 100.0 AS compliance_pct",
    )
    after = run_query(filled, "SELECT day, compliance_pct FROM daily_compliance ORDER BY day")
    assert after.equals(honest) and list(after["compliance_pct"]) == [88.0, 88.0]
    assert any(p.startswith("view daily_compliance differs") for p in problems_of(filled))
    # A plain DuckDB user would see the fake: that is what verify warns about.
    conn = synth.plain_connect(filled)
    assert conn.execute("SELECT compliance_pct FROM daily_compliance").fetchall() == [(100.0,)]
    conn.close()


def test_a_macro_shadowing_a_builtin_changes_neither_reads_nor_hashes(filled, synth):
    tamper(
        filled,
        synth,
        "CREATE MACRO sha256(x) AS 'forged'",
        "CREATE MACRO count_star() AS 0",
    )
    assert run_query(filled, "SELECT sha256('a') AS h")["h"][0] == REAL_SHA256_OF_A
    assert run_query(filled, "SELECT members FROM daily_compliance")["members"].tolist() == [50, 50]
    assert verify_chain(filled).ok
    problems = problems_of(filled)
    assert "macro count_star is not part of bb2sv's schema" in problems[0]
    assert "macro sha256 is not part of bb2sv's schema" in problems[1]


def test_the_writer_refuses_a_file_with_planted_macros(filled, synth):
    tamper(filled, synth, "CREATE MACRO sha256(x) AS 'forged'")
    before = filled.read_bytes()
    with pytest.raises(IntegrityError, match=r"holds macros that bb2sv did not create \(sha256\)"):
        EvidenceStore.open(filled)
    assert filled.read_bytes() == before
    tamper(filled, synth, "DROP MACRO sha256")
    with EvidenceStore.open(filled) as store:  # once removed, collection goes on
        extract = synth.make_extract("acme", synth.synthetic_members(50), day=date(2026, 3, 3))
        store.record_run(extract, policy=DEFAULT_POLICY)
    assert verify_chain(filled).ok


def test_digests_of_a_new_run_do_not_use_the_files_functions(db_path, synth):
    """Even a macro planted between the open and the store cannot forge a new run's hashes."""
    with EvidenceStore.open(db_path) as store:
        store.conn.execute("CREATE MACRO sha256(x) AS 'forged'")
        extract = synth.make_extract("acme", synth.synthetic_members(50), day=date(2026, 3, 1))
        record = store.record_run(extract, policy=DEFAULT_POLICY)
        store.conn.execute("DROP MACRO sha256")
    assert "forged" not in (record.raw_sha256, record.observations_sha256)
    assert verify_chain(db_path).ok


def test_dropped_and_added_objects_are_named(filled, synth):
    tamper(
        filled,
        synth,
        "DROP VIEW evidence_coverage",
        "CREATE VIEW notes AS SELECT 1 AS x",
        "CREATE SCHEMA extra",
        "CREATE SEQUENCE counter",
        "CREATE TABLE scratch (x INTEGER)",
    )
    problems = problems_of(filled)
    assert "view evidence_coverage is missing from the file (dropped)" in problems
    for added in ("view notes", "schema extra", "sequence counter", "table scratch"):
        assert any(p.startswith(f"{added} is not part of bb2sv's schema") for p in problems)
    # Reads still use the shipped view, which the file no longer has.
    assert not run_query(filled, "SELECT * FROM evidence_coverage").empty


def test_the_writer_refuses_a_file_whose_table_was_rebuilt(filled, synth):
    # Without its CHECK, raw_page_bodies takes rows bb2sv never writes (two kinds of body).
    tamper(
        filled,
        synth,
        "CREATE TABLE loose AS SELECT * FROM raw_page_bodies ORDER BY rowid",
        "DROP TABLE raw_page_bodies",
        "ALTER TABLE loose RENAME TO raw_page_bodies",
    )
    before = filled.read_bytes()
    with pytest.raises(IntegrityError, match=r"not bb2sv's \(raw_page_bodies\): they were rebuilt"):
        EvidenceStore.open(filled)
    assert filled.read_bytes() == before
    assert any("table raw_page_bodies differs" in p for p in problems_of(filled))  # verify


def test_a_table_replaced_by_a_view_is_refused(filled, synth):
    tamper(
        filled,
        synth,
        "CREATE TABLE runs_copy AS SELECT * FROM collection_runs",
        "DROP TABLE policy_exceptions",
        "DROP TABLE run_policies",
        "DROP TABLE collection_runs",
        "CREATE VIEW collection_runs AS SELECT * FROM runs_copy WHERE seq < 2",
    )
    with pytest.raises(IntegrityError, match="no table collection_runs, policy_exceptions"):
        EvidenceStore.open(filled, read_only=True)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE member_run_states RENAME COLUMN two_step_state TO state",
        "ALTER TABLE member_identities DROP COLUMN nickname",
        "ALTER TABLE raw_api_responses RENAME COLUMN url TO address",  # no macro reads it
        "ALTER TABLE raw_page_bodies ALTER COLUMN run_id TYPE BLOB",
    ],
)
def test_a_table_whose_columns_were_changed_is_an_integrity_failure(filled, synth, statement):
    """Not "could not open", nor a Binder Error in some later query or in re-creating the
    views: every reader (reports, `bb2sv query`, verify) and the writer refuse the file as
    they open it, name the table, and leave the file as it was."""
    table = statement.split()[2]
    tamper(filled, synth, statement)
    before = filled.read_bytes()
    for read_only in (True, False):
        with pytest.raises(IntegrityError, match=f"table {table} lacks columns bb2sv's has"):
            EvidenceStore.open(filled, read_only=read_only)
    assert filled.read_bytes() == before
    with pytest.raises(IntegrityError, match=table):
        verify_chain(filled)


def test_a_writable_open_restores_the_shipped_views(filled, synth):
    tamper(filled, synth, "CREATE OR REPLACE VIEW findings AS SELECT 1 AS nothing")
    assert problems_of(filled)
    EvidenceStore.open(filled).close()
    assert problems_of(filled) == []
