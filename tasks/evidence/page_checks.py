"""The part of verify that reads page bodies: re-hash every body, re-derive every run.

This is most of verify's work (a year of daily 10,000-member runs is ~7 GB of JSON). Pages
are read in chunks of whole runs by rowid range, because each query on the ZSTD-compressed
`body` column costs a fixed ~20 ms however few rows it returns, and a `run_id = ?` filter
scans the whole table: one query per run made verify quadratic in the history::

    runs = run_locations(conn)
    for chunk in chunks(runs):
        for check in check_chunk(conn, chunk):   # PageCheck per run
            check.bad_body_seqs, check.rederived_sha256

`page_pool.checking_pages` runs the chunks in worker processes when the file is big.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import pandas as pd

from tasks.bitbucket.models import RawPage
from tasks.canonical import sha256_hex
from tasks.evidence import frames, hashing
from tasks.evidence.catalog import stored_table
from tasks.normalise import observations_from_pages

# The stored table itself: rowids are not visible through the sandbox's pass-through view.
PAGES = stored_table("raw_api_pages")
CHUNK_PAGES = 1_000  # ~100 MB of bodies at 100 members a page
_FETCH_ROWS = 256  # one fetchall of ~100 MB of bodies is pathologically slow in duckdb 2.0.1


@dataclass(frozen=True, slots=True)
class RunPages:
    """Where one run's pages are: rowids lo..hi (inclusive) of raw_api_pages."""

    run_id: str
    workspace: str
    lo: int | None = None  # None: the run has no stored pages
    hi: int | None = None
    pages: int = 0

    @property
    def contiguous(self) -> bool:
        """Every rowid in lo..hi is one of this run's pages (true unless tampered with)."""
        return self.lo is not None and self.hi - self.lo + 1 == self.pages


@dataclass(frozen=True, slots=True)
class Chunk:
    """Runs read by one query. `exact`: their spans tile lo..hi, so no run_id filter."""

    runs: tuple[RunPages, ...]
    exact: bool

    @property
    def lo(self) -> int | None:
        return self.runs[0].lo

    @property
    def hi(self) -> int | None:
        return self.runs[-1].hi


@dataclass(frozen=True, slots=True)
class StoredPage:
    page: RawPage
    seq: int
    sha256: str  # as stored (RawPage.sha256 is recomputed when the stored value is empty)


@dataclass(frozen=True, slots=True)
class PageCheck:
    run_id: str
    bad_body_seqs: tuple[int, ...]  # pages whose body does not hash to their stored sha256
    rederived_sha256: str  # observations_sha256 of normalise(stored pages)
    rederived_identity_sha256: str  # identity_sha256 of the same


def run_locations(conn: duckdb.DuckDBPyConnection) -> list[RunPages]:
    """Every run in chain order with the rowid range of its pages (no bodies read)."""
    rows = conn.execute(
        f"""
        WITH spans AS (
            SELECT run_id, min(rowid) AS lo, max(rowid) AS hi, count(*) AS pages
            FROM {PAGES} GROUP BY run_id
        )
        SELECT r.run_id, r.workspace, s.lo, s.hi, coalesce(s.pages, 0)
        FROM collection_runs AS r LEFT JOIN spans AS s USING (run_id)
        ORDER BY r.seq
        """
    ).fetchall()
    return [RunPages(*row) for row in rows]


def chunks(runs: list[RunPages], *, max_pages: int = CHUNK_PAGES) -> Iterator[Chunk]:
    """Adjacent contiguous runs grouped up to max_pages; any other run is a chunk of its own.

    Two runs with the same run_id (possible only after tampering) never share a chunk.
    """
    current: list[RunPages] = []
    for run in sorted(runs, key=lambda run: (run.lo is None, run.lo or 0)):
        if not run.contiguous:
            yield Chunk((run,), exact=False)
            continue
        if current and (
            run.lo != current[-1].hi + 1
            or sum(r.pages for r in current) + run.pages > max_pages
            or any(r.run_id == run.run_id for r in current)
        ):
            yield Chunk(tuple(current), exact=True)
            current = []
        current.append(run)
    if current:
        yield Chunk(tuple(current), exact=True)


def check_chunk(conn: duckdb.DuckDBPyConnection, chunk: Chunk) -> list[PageCheck]:
    """Re-hash each run's page bodies and digest the observations re-derived from them."""
    by_run = _read_chunk(conn, chunk)
    return [check_pages(conn, run, by_run.get(run.run_id, [])) for run in chunk.runs]


def check_pages(
    conn: duckdb.DuckDBPyConnection, run: RunPages, pages: list[StoredPage]
) -> PageCheck:
    bad = tuple(page.seq for page in pages if sha256_hex(page.page.body) != page.sha256)
    frame = observations_from_pages(run.workspace, [page.page for page in pages])
    observations, identity = rederived_digests(conn, run.run_id, frame)
    return PageCheck(run.run_id, bad, observations, identity)


def stored_pages(conn: duckdb.DuckDBPyConnection, run: RunPages) -> list[StoredPage]:
    """The run's pages in seq order."""
    return _read_chunk(conn, Chunk((run,), exact=False)).get(run.run_id, [])


def rederived_digests(
    conn: duckdb.DuckDBPyConnection, run_id: str, frame: pd.DataFrame
) -> tuple[str, str]:
    """(observations_sha256, identity_sha256) of a normalised frame, by the same SQL as on
    load."""
    if frame.empty:
        return hashing.EMPTY_SHA256, hashing.EMPTY_SHA256
    name = f"_bb2sv_rederived_{os.getpid()}"
    conn.register(name, frames.observations_table(run_id, frame))
    try:
        return tuple(  # type: ignore[return-value]
            hashing.digests(conn, kind, name).get(run_id, hashing.EMPTY_SHA256)
            for kind in ("observations", "identity")
        )
    finally:
        conn.unregister(name)


def _read_chunk(conn: duckdb.DuckDBPyConnection, chunk: Chunk) -> dict[str, list[StoredPage]]:
    """{run_id: [StoredPage, …] in seq order} for the chunk's runs."""
    if chunk.lo is None:
        return {}
    sql = (
        "SELECT run_id, seq, sha256, listing, url, status_code, fetched_at, body "
        f"FROM {PAGES} WHERE rowid BETWEEN ? AND ?"
    )
    params: list[object] = [chunk.lo, chunk.hi]
    if not chunk.exact:
        sql += " AND run_id = ?"
        params.append(chunk.runs[0].run_id)
    result = conn.execute(sql, params)
    by_run: dict[str, list[StoredPage]] = {}
    while rows := result.fetchmany(_FETCH_ROWS):
        for run_id, seq, sha256, *page in rows:
            # RawPage fills in an empty sha256; the stored value is kept apart to check it.
            stored = StoredPage(RawPage(*page, sha256=sha256), seq, sha256)
            by_run.setdefault(run_id, []).append(stored)
    for pages in by_run.values():
        pages.sort(key=lambda page: page.seq)
    return by_run
