"""Page bodies stored once and as patches (migration 0006), observations as identities and
states (0007): exact bodies back, from Python and from the SQL view, and every edit of the
new tables caught by verify."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.bitbucket.models import RawPage
from tasks.bitbucket.spill import SpillLost
from tasks.evidence import hashing, page_checks, page_pool
from tasks.evidence.connection import in_memory
from tasks.evidence.errors import IntegrityError
from tasks.evidence.integrity import rederive, verify_chain
from tasks.evidence.page_patch import apply_patch, make_patch
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

ALPHABET = b'{}[],:"ab01 \xff\n'


def _edited(rng: random.Random, base: bytes) -> bytes:
    body = bytearray(base)
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(0, len(body))
        choice = rng.random()
        if choice < 0.3:
            del body[at : at + rng.randint(0, 12)]
        elif choice < 0.6:
            body[at:at] = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        elif choice < 0.8:
            body[at : at + 3] = bytes(rng.choice(ALPHABET) for _ in range(3))
        else:  # move a slice elsewhere (a member who changed place)
            piece = bytes(body[at : at + rng.randint(0, 30)])
            del body[at : at + len(piece)]
            where = rng.randint(0, len(body))
            body[where:where] = piece
    return bytes(body)


def test_patches_give_back_every_byte_over_random_edits():
    rng = random.Random(13)
    patched = 0
    for _ in range(3_000):
        base = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 400)))
        if rng.random() < 0.5:  # JSON-array-like, so elements match
            base = b"[" + b",".join(b'{"a":%d,"b":"x"}' % rng.randint(0, 9) for _ in range(40))
            base += b"]"
        body = _edited(rng, base)
        ops = make_patch(base, body)
        if ops is not None:
            patched += 1
            assert apply_patch(base, ops) == body
    assert patched > 1_000  # most small edits are patched, not stored whole


def test_row_digests_sort_lines_by_their_utf8_bytes_as_duckdb_does():
    """hashing.sorted_lines_digests (Arrow) against DuckDB's own ordered string_agg, the
    definition the stored hashes were made with, over lines of any characters."""
    rng = random.Random(7)
    alphabet = ["a", "b", "Z", "é", "ß", "€", "😀", "\u0001", "\n", '"', "\\", "\uffff", "Ā"]
    rows = [
        (f"run{rng.randint(1, 4)}", "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))))
        for _ in range(2_000)
    ]
    conn = in_memory()
    conn.execute("CREATE TABLE lines (run_id VARCHAR, line VARCHAR)")
    conn.executemany("INSERT INTO lines VALUES (?, ?)", rows)
    expected = dict(
        conn.execute(
            "SELECT run_id, sha256(string_agg(line, chr(10) ORDER BY line)) FROM lines GROUP BY 1"
        ).fetchall()
    )
    table = conn.sql("SELECT * FROM lines").to_arrow_table()
    assert hashing.sorted_lines_digests(table) == expected
    shuffled = table.take(pa.array(rng.sample(range(table.num_rows), table.num_rows)))
    assert hashing.sorted_lines_digests(shuffled) == expected


def test_a_patch_that_copies_past_its_base_is_refused():
    with pytest.raises(ValueError, match="copies bytes"):
        apply_patch(b"abc", [(1, 5, None)])


def _days(synth, count: int, members: int = 250) -> list:
    """Extracts of `count` days; every day a few members change 2SV state or name."""
    rows = synth.synthetic_members(members)
    out = []
    for day in range(1, count + 1):
        rows = [dict(row) for row in rows]
        for index in (day * 7 % members, day * 31 % members):
            rows[index]["has_2fa_enabled"] = not rows[index].get("has_2fa_enabled")
        rows[day * 13 % members]["display_name"] = f"Renamed On Day {day}"
        out.append(synth.make_extract("acme", rows, day=date(2026, 3, day), pagelen=50))
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory, synth) -> tuple[Path, list, list[str]]:
    path = tmp_path_factory.mktemp("pages") / "evidence.duckdb"
    extracts = _days(synth, 4)
    with EvidenceStore.open(path) as store:
        ids = [store.record_run(e, policy=DEFAULT_POLICY).run_id for e in extracts]
    return path, extracts, ids


@pytest.fixture
def copy(history, db_path, synth) -> tuple[Path, list, list[str]]:
    synth.copy_file(history[0], db_path)
    return db_path, history[1], history[2]


def test_bodies_are_stored_once_mostly_as_patches_and_come_back_exact(history):
    path, extracts, ids = history
    with EvidenceStore.open(path, read_only=True) as store:
        as_arrived, whole, patched = store.conn.execute(
            "SELECT count(body), count(body_zlib), count(patch) FROM raw_page_bodies"
        ).fetchall()[0]
        for extract, run_id in zip(extracts, ids, strict=True):
            stored = store.conn.execute(
                "SELECT body, sha256 FROM raw_api_pages WHERE run_id = ? ORDER BY seq", [run_id]
            ).fetchall()
            assert [(bytes(body), sha) for body, sha in stored] == [
                (page.body, page.sha256) for page in extract.pages
            ]
            assert rederive(store.conn, run_id).matches
    assert whole == 10  # the first day's pages (5 of members, 5 of permissions), compressed
    assert as_arrived == 0  # only files from before bb2sv 0.5 hold bodies uncompressed
    assert patched > 0
    assert whole + patched < sum(len(extract.pages) for extract in extracts)
    assert verify_chain(path, workers=0).ok


def test_bodies_dropped_from_a_full_cache_are_read_again(history):
    """The body cache is emptied when it holds too much; the next chunk reads what it
    needs again (a year verified in one process goes past the limit)."""
    path, _extracts, ids = history
    with EvidenceStore.open(path, read_only=True) as store:
        runs = page_checks.run_locations(store.conn)
        cache = page_checks.BodyCache(max_bytes=1)
        checks = [
            check
            for chunk in page_checks.chunks(runs, max_pages=10)  # a run per chunk
            for check in page_checks.check_chunk(store.conn, chunk, cache)
        ]
    assert [check.run_id for check in checks] == ids
    assert all(not check.bad_body_seqs for check in checks)
    assert all(check.rederived_sha256 is None for check in checks)  # same rows as stored


def _tamper(path: Path, synth, *statements: str) -> None:
    conn = synth.plain_connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_an_edited_patch_is_caught_in_the_runs_that_hold_it(copy, synth):
    path, _extracts, ids = copy
    patched = (
        synth.plain_connect(path)
        .execute(
            "SELECT b.sha256, min(r.run_id) FROM raw_page_bodies AS b "
            "JOIN raw_api_responses AS r USING (sha256) WHERE b.patch IS NOT NULL GROUP BY 1 "
            "ORDER BY 2 LIMIT 1"
        )
        .fetchall()
    )
    sha, first_run = patched[0]
    _tamper(
        path,
        synth,
        "UPDATE raw_page_bodies SET patch = list_transform(patch, lambda op: "
        "{'offset': op.offset, 'length': op.length, 'data': CASE WHEN op.data IS NULL "
        "THEN NULL ELSE op.data || 'x'::BLOB END}) "
        f"WHERE sha256 = '{sha}'",
    )
    for workers in (0, 2):
        result = verify_chain(path, workers=workers)
        assert result.first_bad_run_id == first_run, result.summary()
        assert "body does not match its sha256" in result.summary()


def test_a_deleted_base_breaks_every_page_patched_from_it(copy, synth):
    path, _extracts, ids = copy
    _tamper(
        path,
        synth,
        "DELETE FROM raw_page_bodies WHERE sha256 IN "
        "(SELECT base_sha256 FROM raw_page_bodies WHERE patch IS NOT NULL)",
    )
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == ids[0]  # the base's own pages: their body is gone
    bad_runs = {p.run_id for p in result.problems if "body does not match" in p.what}
    assert bad_runs == set(ids)  # and every later run, whose patches had that base
    with EvidenceStore.open(path, read_only=True) as store:
        assert (
            store.conn.execute("SELECT count(*) FROM raw_api_pages WHERE body IS NULL").fetchall()[
                0
            ][0]
            > 0
        )


def test_a_base_turned_into_a_patch_breaks_the_pages_patched_from_it(copy, synth, monkeypatch):
    # Its own pages still rebuild (one literal op), but a patch is never a base: the view
    # gives the pages patched from it no body, and verify must not build them either, even
    # when it checked that body in an earlier chunk (a run a chunk, here).
    monkeypatch.setattr(page_pool, "chunks", lambda runs: page_checks.chunks(runs, max_pages=10))
    path, _extracts, ids = copy
    conn = synth.plain_connect(path)
    base, other = conn.execute(
        "SELECT b.sha256, (SELECT min(sha256) FROM raw_page_bodies WHERE patch IS NULL "
        "AND sha256 <> b.sha256) FROM raw_page_bodies AS b WHERE b.sha256 IN "
        "(SELECT base_sha256 FROM raw_page_bodies WHERE patch IS NOT NULL) LIMIT 1"
    ).fetchall()[0]
    conn.execute(
        "UPDATE raw_page_bodies SET patch = [{'offset': NULL, 'length': NULL, "
        "'data': expanded_page_body(body_zlib, sha256)}], base_sha256 = ?, body_zlib = NULL "
        "WHERE sha256 = ?",
        [other, base],
    )
    conn.close()
    with EvidenceStore.open(path, read_only=True) as store:
        own, patched = store.conn.execute(
            "SELECT count(*) FILTER (WHERE sha256 = ? AND body IS NOT NULL), "
            "count(*) FILTER (WHERE body IS NULL) FROM raw_api_pages",
            [base],
        ).fetchall()[0]
    assert own > 0 and patched > 0
    result = verify_chain(path, workers=0)
    assert not result.ok
    bad_runs = {p.run_id for p in result.problems if "body does not match" in p.what}
    assert bad_runs and ids[0] not in bad_runs  # the first run's own pages are whole


@pytest.mark.parametrize(
    ("statement", "first_bad", "said"),
    [
        pytest.param(  # a second row claiming a stored body's hash, with other bytes
            "INSERT INTO raw_page_bodies SELECT sha256, run_id, NULL, NULL, NULL, "
            "body_zlib || 'x'::BLOB "
            "FROM raw_page_bodies WHERE run_id = '{0}' AND patch IS NULL LIMIT 1",
            0,
            "body does not match its sha256",
            id="duplicated body",
        ),
        pytest.param(  # a second, exact copy of a stored body's row
            "INSERT INTO raw_page_bodies SELECT * FROM raw_page_bodies "
            "WHERE run_id = '{1}' LIMIT 1",
            1,
            "is stored 2 times",
            id="copied body",
        ),
        pytest.param(
            "INSERT INTO raw_page_bodies VALUES (sha256('planted'), '{2}', NULL, "
            "'planted'::BLOB, NULL, NULL)",
            2,
            "is no page's body nor any patch's base",
            id="planted body",
        ),
    ],
)
def test_a_body_row_added_by_hand_is_caught(copy, synth, statement, first_bad, said):
    path, _extracts, ids = copy
    _tamper(path, synth, statement.format(*ids))
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == ids[first_bad]
    assert said in result.summary()


def test_an_identity_edit_is_caught_at_the_first_run_that_saw_it(copy, synth):
    path, _extracts, ids = copy
    _tamper(
        path,
        synth,
        "UPDATE member_identities SET display_name = 'Someone' WHERE nickname = 'user5'",
    )
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == ids[0]
    assert "stored observations do not match" in result.summary()
    assert {p.run_id for p in result.problems} == set(ids)  # user5 is in every run


def test_a_state_whose_identity_is_gone_is_caught(copy, synth):
    path, _extracts, ids = copy
    _tamper(path, synth, "DELETE FROM member_identities WHERE nickname = 'user9'")
    result = verify_chain(path, workers=0)
    assert result.first_bad_run_id == ids[0]
    assert "stored observations do not match" in result.summary()


def test_a_page_whose_sha256_is_not_its_body_is_not_stored(db_path, synth):
    extract = synth.make_extract("acme", synth.synthetic_members(20), day=date(2026, 3, 1))
    page = extract.pages[0]
    forged = RawPage(page.listing, page.url, 200, page.fetched_at, page.body, sha256="0" * 64)
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(IntegrityError, match="not the SHA-256 of its body"):
            store.record_run(
                replace(extract, pages=[forged, *extract.pages[1:]]), policy=DEFAULT_POLICY
            )
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]


def test_a_second_page_claiming_an_earlier_pages_sha256_is_checked_too(db_path, synth):
    extract = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 1))
    first, second = extract.pages[0], extract.pages[1]
    claimed = RawPage(first.listing, first.url, 200, first.fetched_at, first.body, first.sha256)
    forged = RawPage(second.listing, second.url, 200, second.fetched_at, second.body, first.sha256)
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(IntegrityError, match="not the SHA-256 of its body"):
            store.record_run(
                replace(extract, pages=[claimed, forged, *extract.pages[2:]]),
                policy=DEFAULT_POLICY,
            )
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]


def _spilled(synth, extract, folder: Path):
    pages, fd = synth.on_disk(extract.pages, folder)
    return replace(extract, pages=pages, derived=None), fd


def test_bodies_read_back_from_disk_are_stored_as_they_arrived(tmp_path, synth):
    extract = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 1))
    spilled, _fd = _spilled(synth, extract, tmp_path)
    stored = {}
    for name, which in (("memory", extract), ("disk", spilled)):
        with EvidenceStore.open(tmp_path / f"{name}.duckdb") as store:
            record = store.record_run(which, policy=DEFAULT_POLICY)
            bodies = store.conn.execute("SELECT body FROM raw_api_pages ORDER BY seq").fetchall()
        stored[name] = (record.raw_sha256, record.observations_sha256, bodies)
    assert stored["disk"] == stored["memory"]
    assert [bytes(body) for (body,) in stored["disk"][2]] == [p.body for p in extract.pages]


def test_a_body_changed_on_disk_after_it_arrived_is_not_stored(db_path, tmp_path, synth):
    extract = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 1))
    spilled, fd = _spilled(synth, extract, tmp_path)
    os.pwrite(fd, b"X", spilled.pages[1]._held.offset + 20)  # same length, one byte changed
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(SpillLost, match="not the body that arrived.*Collect again"):
            store.record_run(spilled, policy=DEFAULT_POLICY)
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]


def test_a_cut_temporary_file_says_so_and_stores_nothing(db_path, tmp_path, synth):
    extract = synth.make_extract("acme", synth.synthetic_members(250), day=date(2026, 3, 1))
    spilled, fd = _spilled(synth, extract, tmp_path)
    os.ftruncate(fd, 100)
    with EvidenceStore.open(db_path) as store:
        with pytest.raises(SpillLost, match="was cut or its disk failed.*Collect again"):
            store.record_run(spilled, policy=DEFAULT_POLICY)
        assert store.conn.execute("SELECT count(*) FROM collection_runs").fetchall() == [(0,)]
