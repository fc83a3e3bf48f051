"""How a run's observations are stored as identities and states (sql/store_observations.sql,
migrations 0007 and 0009): who once, numbered in the order first seen; what per run."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa

from tasks.evidence import frames
from tasks.evidence.connection import connect
from tasks.evidence.integrity import verify_chain
from tasks.evidence.schema import migrate
from tasks.evidence.store import EvidenceStore, _store_observations_sql
from tasks.policy import DEFAULT_POLICY


def _identities(conn) -> list[tuple]:
    return conn.execute(
        "SELECT id, nickname, display_name FROM member_identities ORDER BY rowid"
    ).fetchall()


def _states(conn, run_id: str) -> list[tuple]:
    """(member_id, nickname, display_name) of a run's states, in stored order."""
    return conn.execute(
        "SELECT s.member_id, i.nickname, i.display_name FROM member_run_states AS s "
        "JOIN member_identities AS i ON i.id = s.member_id WHERE s.run_id = ? ORDER BY s.rowid",
        [run_id],
    ).fetchall()


def test_identities_are_numbered_as_first_seen_and_kept_for_later_runs(db_path, synth):
    first = [synth.member(n) for n in (4, 2, 7)]
    renamed = synth.member(2, display_name="Two, Renamed")
    second = [synth.member(9), synth.member(4), renamed, synth.member(7), synth.member(5)]
    with EvidenceStore.open(db_path) as store:
        one = store.record_run(
            synth.make_extract("acme", first, day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
        two = store.record_run(
            synth.make_extract("acme", second, day=date(2026, 3, 2)), policy=DEFAULT_POLICY
        )
        identities = _identities(store.conn)
        states = [_states(store.conn, run.run_id) for run in (one, two)]
    assert identities == [
        (1, "user4", "User Number 4"),
        (2, "user2", "User Number 2"),
        (3, "user7", "User Number 7"),
        (4, "user9", "User Number 9"),  # the second run's new ones, in its order
        (5, "user2", "Two, Renamed"),  # a changed name is a new identity
        (6, "user5", "User Number 5"),
    ]
    assert states[0] == identities[:3]
    assert states[1] == [identities[i] for i in (3, 0, 4, 2, 5)]  # the run's order
    assert verify_chain(db_path).ok


def test_an_identity_seen_twice_in_one_run_is_stored_once(db_path, synth):
    # Two user objects whose keys differ (the number 5, the text "5") but whose stored text
    # is the same: a hostile API can send that. They are one identity, observed twice.
    twins = [synth.member("twin", account_id=5), synth.member("twin", account_id="5")]
    members = [synth.member(1), twins[0], synth.member(2), twins[1], synth.member(3)]
    with EvidenceStore.open(db_path) as store:
        run = store.record_run(
            synth.make_extract("acme", members, day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
        identities = _identities(store.conn)
        states = _states(store.conn, run.run_id)
    assert [nickname for _id, nickname, _name in identities] == ["user1", "twin", "user2", "user3"]
    assert [row[0] for row in identities] == [1, 2, 3, 4]
    assert [member_id for member_id, _n, _d in states] == [1, 2, 3, 2, 4]
    assert verify_chain(db_path).ok


def test_an_identity_an_edit_stored_twice_is_matched_to_its_lowest_id(db_path, synth):
    members = [synth.member(n) for n in (1, 2, 3)]
    with EvidenceStore.open(db_path) as store:
        store.record_run(
            synth.make_extract("acme", members, day=date(2026, 3, 1)), policy=DEFAULT_POLICY
        )
    with synth.plain_connect(db_path) as conn:  # user2's identity again, under a lower id
        conn.execute(
            "INSERT INTO member_identities SELECT 0, * EXCLUDE (id) FROM member_identities "
            "WHERE nickname = 'user2'"
        )
    with EvidenceStore.open(db_path) as store:
        later = store.record_run(
            synth.make_extract("acme", members, day=date(2026, 3, 2)), policy=DEFAULT_POLICY
        )
        states = _states(store.conn, later.run_id)
        count = store.conn.execute("SELECT count(*) FROM member_identities").fetchall()[0][0]
    assert [member_id for member_id, _n, _d in states] == [1, 0, 3]
    assert count == 4  # nothing stored again


def test_identities_stored_before_0009_move_to_text_stored_as_it_is(db_path):
    conn = connect(db_path, read_only=False)
    migrate(conn, target=8)
    rows = [
        (3, "acme", "557058:c", "{c}", "c", "C", "user", None),
        (1, "acme", None, "{a}", "a", "A", "app_user", "bot"),
        (2, "beta", "557058:b", "{b}", None, None, None, None),
    ]
    conn.executemany("INSERT INTO member_identities VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()

    def compressions(conn) -> set[str]:
        return {
            compression
            for (compression,) in conn.execute(
                "SELECT DISTINCT compression FROM pragma_storage_info('member_identities') "
                "WHERE segment_type = 'VARCHAR'"
            ).fetchall()
        }

    with duckdb.connect(str(db_path), read_only=True) as plain:
        assert compressions(plain) != {"Uncompressed"}  # DuckDB's choice, before
    EvidenceStore.open(db_path).close()  # a writable open migrates
    with duckdb.connect(str(db_path), read_only=True) as plain:
        assert plain.execute("SELECT * FROM member_identities ORDER BY rowid").fetchall() == rows
        assert compressions(plain) == {"Uncompressed"}


def test_observations_cut_unevenly_on_two_threads_keep_their_own_identities(db_path):
    """Both inserts read each observation's id beside it by position (POSITIONAL JOIN):
    rows must stay aligned however the observations' Arrow table is cut (empty pieces
    too), with more rows than a row group, on two DuckDB threads."""
    count = 130_000
    texts = {
        name: [f"{name}-{n}" for n in range(count)]
        for name in ("account_id", "uuid", "nickname", "display_name")
    }
    for name in texts:  # one identity, observed twice
        texts[name][70_000] = texts[name][90_000] = "twin"
    derived = pa.table(
        {
            "workspace": ["acme"] * count,
            "observed_at": pa.array([datetime(2026, 3, 1, tzinfo=UTC)] * count),
            **texts,
            "permission": [("member", "owner", None)[n % 3] for n in range(count)],
            "has_2fa_enabled": [n % 2 == 0 for n in range(count)],
            "two_step_state": [("enabled", "disabled")[n % 2] for n in range(count)],
            "account_type": ["user"] * count,
            "kind": pa.nulls(count, pa.string()),
            "in_directory": pa.nulls(count, pa.bool_()),
            "directory_account_status": pa.nulls(count, pa.string()),
            "directory_claim_status": pa.nulls(count, pa.string()),
            "directory_mfa_enabled": pa.nulls(count, pa.bool_()),
            "directory_email_domain": pa.nulls(count, pa.string()),
        }
    )
    rows = frames.observations_table("r", derived)
    cuts = [0, 1, 1, 7_000, 7_000, 7_013, 90_000, 130_000]
    uneven = pa.concat_tables([rows.slice(a, b - a) for a, b in itertools.pairwise(cuts)])
    assert uneven.column(0).num_chunks == len(cuts) - 1
    with EvidenceStore.open(db_path) as store:
        conn = store.conn
        conn.execute("SET threads = 2")
        conn.register("_bb2sv_obs", uneven)
        conn.execute("BEGIN TRANSACTION")
        conn.execute(_store_observations_sql())
        stored = conn.execute(
            "SELECT i.account_id, i.nickname, s.permission FROM member_run_states AS s "
            "JOIN member_identities AS i ON i.id = s.member_id ORDER BY s.rowid"
        ).fetchall()
        count = conn.execute("SELECT count(*) FROM member_identities").fetchall()[0][0]
        conn.execute("ROLLBACK")
    sent = list(
        zip(
            *(rows[name].to_pylist() for name in ("account_id", "nickname", "permission")),
            strict=True,
        )
    )
    assert stored == sent
    assert count == rows.num_rows - 1  # the twins are one identity
