"""Page bodies stored whole are kept compressed (migration 0008): exact bodies back through
bb2sv's readers and, on request, plain DuckDB; plain DuckDB alone says how to read them;
files written before keep their bodies as they were; every edit of a compressed row caught.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tasks import page_encoding
from tasks.bitbucket.models import RawPage
from tasks.evidence import page_bodies
from tasks.evidence.integrity import verify_chain
from tasks.evidence.page_bodies import expand_in_plain_duckdb
from tasks.evidence.store import EvidenceStore
from tasks.evidence.verification import verify_evidence
from tasks.policy import DEFAULT_POLICY


def _extract(synth, day: int, members: int = 250):
    rows = synth.synthetic_members(members)
    rows[day]["has_2fa_enabled"] = False  # a change a day: the next day's page is a patch
    return synth.make_extract("acme", rows, day=date(2026, 3, day), pagelen=50)


@pytest.fixture(scope="module")
def two_days(tmp_path_factory, synth) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("compressed") / "evidence.duckdb"
    extracts = [_extract(synth, 1), _extract(synth, 2)]
    with EvidenceStore.open(path) as store:
        for extract in extracts:
            store.record_run(extract, policy=DEFAULT_POLICY)
    return path, extracts


def _bodies(conn: duckdb.DuckDBPyConnection) -> list[bytes | None]:
    rows = conn.execute("SELECT body FROM raw_api_pages ORDER BY run_id, seq").fetchall()
    return [None if body is None else bytes(body) for (body,) in rows]


def _sent(extracts: list) -> list[bytes]:
    return [page.body for extract in extracts for page in extract.pages]


def test_whole_bodies_are_stored_compressed_and_come_back_exact(two_days):
    path, extracts = two_days
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute(
            "SELECT sha256, body_zlib, body FROM raw_page_bodies WHERE patch IS NULL"
        ).fetchall()
        patches = conn.execute(
            "SELECT count(*) FROM raw_page_bodies WHERE patch IS NOT NULL AND body_zlib IS NULL"
        ).fetchall()[0][0]
        (storage,) = conn.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('raw_page_bodies') "
            "WHERE column_name = 'body_zlib' AND segment_type = 'BLOB'"
        ).fetchall()
    sent = {page.sha256: page.body for extract in extracts for page in extract.pages}
    assert len(rows) == 10 and patches > 0  # day 1's pages whole, day 2's changes as patches
    assert storage == ("Uncompressed",)  # DuckDB does not look for what zlib left
    for sha, stored, as_arrived in rows:
        assert as_arrived is None
        assert len(stored) * 4 < len(sent[sha])
        assert zlib.decompress(stored) == sent[sha]  # any zlib reads them
    with EvidenceStore.open(path, read_only=True) as store:  # as `bb2sv query` reads
        assert _bodies(store.conn) == _sent(extracts)
    assert verify_chain(path, workers=0).ok


def test_plain_duckdb_says_how_to_read_them_and_reads_them_when_asked(two_days):
    path, extracts = two_days
    with duckdb.connect(str(path), read_only=True) as conn:
        shas = {page.sha256 for page in _pages(extracts)}
        for counting, expected in (  # what needs no body reads as before
            ("SELECT count(*) FROM raw_api_pages", len(_sent(extracts))),
            ("SELECT count(*) FROM raw_api_pages WHERE run_id IS NOT NULL", len(_sent(extracts))),
            ("SELECT count(DISTINCT sha256) FROM raw_api_pages WHERE seq > 0", len(shas)),
        ):
            assert conn.execute(counting).fetchall()[0][0] == expected
        with pytest.raises(duckdb.InvalidInputException, match="zlib-compressed.*bb2sv query"):
            _bodies(conn)
        expand_in_plain_duckdb(conn)
        expand_in_plain_duckdb(conn)  # a second call finds its function there
        assert _bodies(conn) == _sent(extracts)


def test_a_file_with_bodies_stored_before_compression_reads_and_grows_as_one(db_path, synth):
    with EvidenceStore.open(db_path) as store:
        store.record_run(_extract(synth, 1), policy=DEFAULT_POLICY)
    with duckdb.connect(str(db_path)) as conn:  # as a bb2sv before 0.5 stored them
        expand_in_plain_duckdb(conn)
        conn.execute(
            "UPDATE raw_page_bodies SET body = expanded_page_body(body_zlib, sha256), "
            "body_zlib = NULL WHERE body_zlib IS NOT NULL"
        )
    old = [_extract(synth, 1)]
    with duckdb.connect(str(db_path), read_only=True) as conn:
        assert _bodies(conn) == _sent(old)  # plain DuckDB reads such a file as before
    later = [_extract(synth, 2), _extract(synth, 3, members=320)]
    with EvidenceStore.open(db_path) as store:
        for extract in later:
            store.record_run(extract, policy=DEFAULT_POLICY)
        rows = store.conn.execute(
            "SELECT run_id, CASE WHEN body IS NOT NULL THEN 'as arrived' "
            "WHEN body_zlib IS NOT NULL THEN 'zlib' ELSE 'patch' END "
            "FROM raw_page_bodies GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    runs = sorted({run_id for run_id, _kind in rows})
    assert rows == [
        (runs[0], "as arrived"),  # the old bodies, kept as they were
        (runs[1], "patch"),  # patches of them
        (runs[2], "patch"),
        (runs[2], "zlib"),  # its new last pages, whole
    ]
    with EvidenceStore.open(db_path, read_only=True) as store:
        assert _bodies(store.conn) == _sent(old + later)
    with duckdb.connect(str(db_path), read_only=True) as conn:  # a compressed body beside
        old_run = conn.execute(
            "SELECT body FROM raw_api_pages WHERE run_id = ? ORDER BY seq", [runs[0]]
        )
        assert [bytes(body) for (body,) in old_run.fetchall()] == _sent(old)
        with pytest.raises(duckdb.InvalidInputException, match="zlib-compressed"):
            conn.execute("SELECT body FROM raw_api_pages WHERE run_id = ?", [runs[2]]).fetchall()
    assert verify_chain(db_path, workers=0).ok


def test_a_query_expands_only_the_bodies_of_the_pages_it_reads(two_days, monkeypatch):
    path, extracts = two_days
    expanded = []
    checked = page_bodies.checked_page_body

    def counted(body_zlib, sha256):
        if body_zlib is not None:
            expanded.append(sha256)
        return checked(body_zlib, sha256)

    monkeypatch.setattr(page_bodies, "checked_page_body", counted)  # as readers register it
    with EvidenceStore.open(path, read_only=True) as store:
        store.conn.execute("SELECT count(*), max(url) FROM raw_api_pages").fetchall()
        assert expanded == []
        first, second = (
            run_id for (run_id,) in store.conn.execute(
                "SELECT run_id FROM collection_runs ORDER BY seq"
            ).fetchall()
        )  # fmt: skip
        store.conn.execute(
            "SELECT body FROM raw_api_pages WHERE run_id = ? AND seq = 2", [first]
        ).fetchall()
        assert expanded == [extracts[0].pages[1].sha256]
        expanded.clear()
        (patched,) = store.conn.execute(  # day 2's first page: a patch of day 1's
            "SELECT body FROM raw_api_pages WHERE run_id = ? AND seq = 1", [second]
        ).fetchall()[0]
    assert bytes(patched) == extracts[1].pages[0].body != extracts[0].pages[0].body
    assert expanded == [extracts[0].pages[0].sha256]  # its base, once, not once per copy


BOMB = zlib.compress(b" " * (page_encoding.MAX_EXPANDED_BYTES + 1), 9)
AT_THE_BOUND = zlib.compress(b" " * page_encoding.MAX_EXPANDED_BYTES, 9)


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        ("body_zlib = ?", "one byte changed"),
        ("body_zlib = ?", "edited and compressed again"),
        ("body = body_zlib, body_zlib = NULL", None),  # the compressed bytes as the body
        ("body_zlib = ?", b"not zlib"),
        ("body_zlib = ?", BOMB),  # a small blob that expands beyond any page
        ("body_zlib = ?", AT_THE_BOUND),  # expands, to other bytes than the page's
    ],
    ids=["byte changed", "recompressed", "taken as it arrived", "not zlib", "bomb", "at the bound"],
)
def test_an_edited_compressed_body_is_caught_and_read_as_missing(
    two_days, synth, db_path, edit, value
):
    path, extracts = two_days
    synth.copy_file(path, db_path)
    target = extracts[0].pages[1].sha256
    conn = synth.plain_connect(db_path)
    (stored,) = conn.execute(
        "SELECT body_zlib FROM raw_page_bodies WHERE sha256 = ?", [target]
    ).fetchall()[0]
    if value == "one byte changed":
        value = bytes(stored[:40]) + bytes([stored[40] ^ 0x01]) + bytes(stored[41:])
    elif value == "edited and compressed again":  # a valid stream of another body
        sent = extracts[0].pages[1].body
        flipped = sent.replace(b'"has_2fa_enabled":false', b'"has_2fa_enabled":true')
        assert flipped != sent
        value = zlib.compress(flipped)
    params = [] if value is None else [value]
    conn.execute(f"UPDATE raw_page_bodies SET {edit} WHERE sha256 = ?", [*params, target])
    conn.close()
    result = verify_chain(db_path, workers=0)
    assert result.first_bad_run_id == _first_run(db_path)  # the run that stored it
    assert "body does not match its sha256" in result.summary()
    with EvidenceStore.open(db_path, read_only=True) as store:  # no error, no other bytes
        bodies = _bodies(store.conn)
    expected = _sent(extracts)
    changed = [i for i, (got, sent) in enumerate(zip(bodies, expected, strict=True)) if got != sent]
    assert changed == [i for i, page in enumerate(_pages(extracts)) if page.sha256 == target]
    # What is stored as it arrived is shown as stored; what is compressed, only if whole.
    assert all(bodies[i] == (bytes(stored) if value is None else None) for i in changed)


def _pages(extracts: list) -> list:
    return [page for extract in extracts for page in extract.pages]


def _first_run(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as conn:
        first = conn.execute("SELECT run_id FROM collection_runs ORDER BY seq LIMIT 1")
        return first.fetchall()[0][0]


def test_a_body_far_more_compressible_than_a_page_is_kept_as_it_arrived(db_path, synth):
    extract = _extract(synth, 1)
    page = extract.pages[-1]  # a hostile API's page: within the client's bound, all spaces
    spaces = RawPage(page.listing, page.url, 200, page.fetched_at, b" " * 3_000_000)
    extract = replace(extract, pages=[*extract.pages[:-1], spaces], derived=None)
    with EvidenceStore.open(db_path) as store:
        store.record_run(extract, policy=DEFAULT_POLICY)
        kept = store.conn.execute(
            "SELECT body IS NOT NULL, body_zlib IS NULL FROM raw_page_bodies WHERE sha256 = ?",
            [spaces.sha256],
        ).fetchall()
    assert kept == [(True, True)]  # no reader would expand it that far
    with duckdb.connect(str(db_path), read_only=True) as conn:
        (body,) = conn.execute(
            "SELECT body FROM raw_api_pages WHERE sha256 = ?", [spaces.sha256]
        ).fetchall()[0]
    assert bytes(body) == spaces.body  # plain DuckDB reads it too
    assert verify_chain(db_path, workers=0).ok


def test_a_row_with_two_kinds_of_body_shows_none_and_fails_verify(two_days, synth, db_path):
    path, extracts = two_days
    synth.copy_file(path, db_path)
    page = extracts[0].pages[1]
    edited = page.body.replace(b'"has_2fa_enabled":false', b'"has_2fa_enabled":true')
    conn = synth.plain_connect(db_path)  # rebuilt without its CHECK, then both kinds kept
    conn.execute("CREATE TABLE loose AS SELECT * FROM raw_page_bodies ORDER BY rowid")
    conn.execute("DROP TABLE raw_page_bodies")
    conn.execute("ALTER TABLE loose RENAME TO raw_page_bodies")
    conn.execute("UPDATE raw_page_bodies SET body = ? WHERE sha256 = ?", [edited, page.sha256])
    conn.close()
    with EvidenceStore.open(db_path, read_only=True) as store:
        shown = store.conn.execute(
            "SELECT DISTINCT body FROM raw_api_pages WHERE sha256 = ?", [page.sha256]
        ).fetchall()
    assert shown == [(None,)]  # neither the edited body nor the compressed one
    result = verify_chain(db_path, workers=0)
    assert result.first_bad_run_id == _first_run(db_path)
    assert "body does not match its sha256" in result.summary()
    catalog = verify_evidence(db_path, workers=0).catalog
    assert any("table raw_page_bodies differs" in p and "never re-creates" in p for p in catalog)
