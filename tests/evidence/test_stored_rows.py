"""Verify reads runs' stored observations as the member_2sv_observations view gives them,
joining states to identities in Arrow (`stored_rows`): the same rows as the view, for an
untouched file and for files whose identities were deleted, edited or stored twice."""

from __future__ import annotations

from datetime import date

import pytest

from tasks.evidence.store import EvidenceStore
from tasks.evidence.stored_rows import COLUMNS, StoredIdentities, stored_rows
from tasks.policy import DEFAULT_POLICY


@pytest.fixture
def three_runs(db_path, synth):
    members = synth.synthetic_members(40)
    with EvidenceStore.open(db_path) as store:
        for day in (1, 2, 3):
            renamed = [*members[:5], synth.member(6, display_name=f"Day {day}"), *members[6:]]
            extract = synth.make_extract("acme", renamed, day=date(2026, 3, day))
            store.record_run(extract, policy=DEFAULT_POLICY)
    return db_path


def _both(path) -> tuple[list, list, list[str], bool]:
    with EvidenceStore.open(path, read_only=True) as store:
        conn = store.conn
        runs = [
            r for (r,) in conn.execute("SELECT run_id FROM collection_runs ORDER BY seq").fetchall()
        ]
        identities = StoredIdentities()
        mine = stored_rows(conn, runs[1:], identities).to_pylist()
        joined_here = identities.get(conn) is not None
        view = (
            conn.sql(
                f"SELECT {', '.join(COLUMNS)} FROM member_2sv_observations WHERE run_id IN "
                "(SELECT unnest($ids))",
                params={"ids": runs[1:]},
            )
            .to_arrow_table()
            .to_pylist()
        )
    return mine, view, runs, joined_here


def _key(row: dict) -> tuple:
    return tuple((value is None, str(value)) for value in row.values())


@pytest.mark.parametrize(
    "edit",
    [
        None,
        "DELETE FROM member_identities WHERE nickname = 'user7'",
        "UPDATE member_identities SET display_name = 'Someone Else' WHERE nickname = 'user9'",
        "INSERT INTO member_identities SELECT * REPLACE ('intruder' AS nickname) "
        "FROM member_identities WHERE nickname = 'user3'",
        "UPDATE member_run_states SET member_id = 9999 WHERE rowid = 45",
    ],
    ids=["untouched", "identity deleted", "identity edited", "id stored twice", "dangling id"],
)
def test_the_rows_are_the_views(three_runs, synth, edit):
    if edit is not None:
        with synth.plain_connect(three_runs) as conn:
            conn.execute(edit)
    mine, view, runs, joined_here = _both(three_runs)
    assert sorted(mine, key=_key) == sorted(view, key=_key)
    assert joined_here is not (edit is not None and "intruder" in edit)  # else: the view
    assert len(mine) == 80 + (2 if edit and "intruder" in edit else 0)  # two runs of 40
    assert {row["run_id"] for row in mine} == set(runs[1:])
