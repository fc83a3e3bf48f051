"""The part of verify that reads page bodies: re-hash every body, re-derive every run.

This is most of verify's work (a year of daily 10,000-member runs is ~7 GB of JSON, though
only ~3,000 distinct bodies). Page metadata is read in chunks of whole runs by rowid range
of `raw_api_responses` (a `run_id = ?` filter scans the whole table: one query per run made
verify quadratic in the history); the chunk's bodies are then read from `raw_page_bodies`
by hash, rebuilt (`page_bodies.rebuild`) and re-hashed once each per `BodyCache`, and
re-derivation parses each distinct body once (`PageMemo`); the stored body rows are read in
one scan when they fit in memory (`BodyCache`)::

    runs = run_locations(conn)
    for chunk in chunks(runs):
        for check in check_chunk(conn, chunk):   # PageCheck per run
            check.bad_body_seqs, check.rederived_sha256

`page_pool.checking_pages` runs the chunks in worker processes when the file is big.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.bitbucket.models import RawPage
from tasks.canonical import sha256_hex
from tasks.evidence import frames, hashing, page_bodies, row_lines
from tasks.evidence.catalog import stored_table
from tasks.evidence.stored_rows import StoredIdentities, stored_rows
from tasks.normalise import (
    IDENTITY_COLUMNS,
    OBSERVATION_COLUMNS,
    PageMemo,
    joins_roles_by_uuid,
    observations_table,
)

# The stored tables themselves: rowids are not visible through the sandbox's views.
PAGES = stored_table("raw_api_responses")
BODIES = stored_table("raw_page_bodies")
BODY_CACHE_BYTES = 256 * 2**20  # rebuilt bodies kept for the next runs of a chunk
_WHOLE_AMONG = "WHERE patch IS NULL AND sha256 IN (SELECT unnest(?))"
CHUNK_PAGES = 1_000  # ~100 MB of bodies at 100 members a page


@dataclass(frozen=True, slots=True)
class RunPages:
    """Where one run's pages are: rowids lo..hi (inclusive) of raw_api_responses."""

    run_id: str
    workspace: str
    lo: int | None = None  # None: the run has no stored pages
    hi: int | None = None
    pages: int = 0
    tool_version: str | None = None  # the bb2sv that stored it: its rules re-derive it

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
    sha256: str  # as stored
    intact: bool = True  # a stored body gives back bytes with this sha256


@dataclass(frozen=True, slots=True)
class PageCheck:
    run_id: str
    bad_body_seqs: tuple[int, ...]  # pages whose body does not hash to their stored sha256
    # observations_sha256 of normalise(stored pages); None: those rows are the stored rows
    # (same values, as a multiset), so their digest is the stored rows' digest.
    rederived_sha256: str | None
    rederived_identity_sha256: str | None  # identity_sha256 of the same; None likewise
    # observations_sha256 and identity_sha256 of the stored rows (None, from check_pages
    # only: to be digested in SQL by check_chunk)
    stored_sha256: str | None
    stored_identity_sha256: str | None


def run_locations(conn: duckdb.DuckDBPyConnection) -> list[RunPages]:
    """Every run in chain order with the rowid range of its pages (no bodies read)."""
    rows = conn.execute(
        f"""
        WITH spans AS (
            SELECT run_id, min(rowid) AS lo, max(rowid) AS hi, count(*) AS pages
            FROM {PAGES} GROUP BY run_id
        )
        SELECT r.run_id, r.workspace, s.lo, s.hi, coalesce(s.pages, 0), r.tool_version
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


class BodyCache:
    """Bodies by sha256, each stored row rebuilt and re-hashed once: `good[sha]` is the body
    when every stored row of that hash gives it back, None when one does not (edited, or
    its base is missing or edited) or no row has it. Also the parse memo of those bodies.

    Any query of `raw_page_bodies` costs a scan of its bodies (a filter on sha256 or even
    rowid still reads the row group's bodies: ~15 ms a query for a year of 10,000 members),
    so when the stored rows fit in `max_bytes` (as stored: compressed bodies count their
    compressed size) they are all read in one scan on first use and kept (`stored`);
    otherwise each load queries the rows it needs. A row is expanded as it is checked, to at
    most MAX_RATIO times its stored size (`page_encoding`), and only a body that hashes to
    its name is kept.
    """

    def __init__(self, max_bytes: int = BODY_CACHE_BYTES) -> None:
        self.good: dict[str, bytes | None] = {}
        self.bases: dict[str, bytes] = {}  # whole bodies patches are made from, re-hashed
        self.max_bytes = max_bytes
        self.memo = PageMemo()
        self.parts = row_lines.PageParts(self.memo)
        self.identities = StoredIdentities()
        self.stored: dict[str, list[page_bodies.BodyRow]] | None = None
        self._scanned = False
        self._held = 0

    def load(self, conn: duckdb.DuckDBPyConnection, shas: set[str]) -> None:
        if self._held > self.max_bytes:  # bodies of runs long past; their checks are done
            self.good, self.bases = {}, {}
            self._held = 0
        wanted = sorted(shas - self.good.keys())
        if not wanted:
            return
        if not self._scanned:
            self._scanned = True
            self.stored = _all_rows(conn, self.max_bytes)
        rows = self._rows(conn, wanted)
        bases = {row.base_sha256 for row in rows if row.base_sha256 is not None}
        # Patches of one base span many days: a base already read is not read again.
        missing = sorted(bases - self.bases.keys())
        if self.stored is not None:  # a base checked whole already: its body is in `good`
            for sha in missing:
                body = self.good.get(sha)
                if body is not None and any(r.patch is None for r in self.stored.get(sha, ())):
                    self.bases[sha] = body
            missing = [sha for sha in missing if sha not in self.bases]
        expanded: dict[int, bytes | None] = {}  # by id(row): a stored row read as a base too
        for row in self._rows(conn, missing, wholes_only=True):
            body = expanded[id(row)] = row.body
            if body is not None and sha256_hex(body) == row.sha256:
                self.bases[row.sha256] = body
                self._held += len(body)
        wholes = {sha: self.bases[sha] for sha in bases if sha in self.bases}
        found: dict[str, bytes | None] = dict.fromkeys(wanted)
        seen: set[str] = set()
        for row in rows:
            # The same row object (`stored`) may have been expanded just above, as a base.
            body = expanded[id(row)] if id(row) in expanded else page_bodies.rebuild(row, wholes)
            ok = body is not None and sha256_hex(body) == row.sha256
            if row.sha256 in seen and (found[row.sha256] is None or not ok):
                found[row.sha256] = None  # any bad row of a hash makes it bad
                continue
            seen.add(row.sha256)
            found[row.sha256] = body if ok else None
        for sha, body in found.items():
            self.good[sha] = body
            self._held += len(body or b"")

    def _rows(
        self, conn: duckdb.DuckDBPyConnection, shas: list[str], *, wholes_only: bool = False
    ) -> list[page_bodies.BodyRow]:
        """Every stored row of those hashes (with wholes_only, those holding a whole body)."""
        if not shas:
            return []
        if self.stored is None:
            where = _WHOLE_AMONG if wholes_only else "WHERE sha256 IN (SELECT unnest(?))"
            return list(page_bodies.body_rows(conn, BODIES, where, [shas]))
        rows = [row for sha in shas for row in self.stored.get(sha, ())]
        return [row for row in rows if row.patch is None] if wholes_only else rows


def _all_rows(
    conn: duckdb.DuckDBPyConnection, max_bytes: int
) -> dict[str, list[page_bodies.BodyRow]] | None:
    """Every stored body row by sha256, or None when they hold more than max_bytes."""
    out: dict[str, list[page_bodies.BodyRow]] = {}
    held = 0
    for row in page_bodies.body_rows(conn, BODIES):
        held += len(row.stored or b"") + sum(len(op["data"] or b"") for op in row.patch or ())
        if held > max_bytes:
            return None
        out.setdefault(row.sha256, []).append(row)
    return out


def check_chunk(
    conn: duckdb.DuckDBPyConnection, chunk: Chunk, cache: BodyCache | None = None
) -> list[PageCheck]:
    """Re-hash each run's page bodies and check the observations re-derived from them."""
    cache = BodyCache() if cache is None else cache
    by_run = _read_chunk(conn, chunk, cache)
    intact = [stored.page for pages in by_run.values() for stored in pages if stored.intact]
    cache.parts.prepare(conn, intact)  # one query for the chunk's new members pages
    rows = stored_rows(conn, [run.run_id for run in chunk.runs], cache.identities)
    stored = _by_run(rows)
    checks = [
        check_pages(conn, run, by_run.get(run.run_id, []), cache, stored.get(run.run_id))
        for run in chunk.runs
    ]
    # The stored rows of runs whose re-derived rows could not stand for them, in SQL.
    rest = [check.run_id for check in checks if check.stored_sha256 is None]
    if not rest:
        return checks
    observations, identity = _digests_of(
        conn, rows.filter(pc.is_in(rows["run_id"], pa.array(rest, pa.string())))
    )
    return [
        check
        if check.stored_sha256 is not None
        else dataclasses.replace(
            check,
            stored_sha256=observations.get(check.run_id, hashing.EMPTY_SHA256),
            stored_identity_sha256=identity.get(check.run_id, hashing.EMPTY_SHA256),
        )
        for check in checks
    ]


def _digests_of(conn: duckdb.DuckDBPyConnection, rows: pa.Table) -> tuple[dict, dict]:
    """(observations_sha256, identity_sha256) per run of rows (stored or re-derived), by the
    digest SQL."""
    name = f"_bb2sv_stored_{os.getpid()}"
    conn.register(name, rows)
    try:
        return hashing.digests(conn, "observations", name), hashing.digests(conn, "identity", name)
    finally:
        conn.unregister(name)


def check_pages(
    conn: duckdb.DuckDBPyConnection,
    run: RunPages,
    pages: list[StoredPage],
    cache: BodyCache,
    stored: pa.Table | None = None,
) -> PageCheck:
    """The run's bad pages, and its re-derived rows compared with `stored` (the run's stored
    observations): where they are the same rows, the stored digests stand for them; where
    not, the re-derived rows are digested here. When they are the same rows over every
    digested column and every page is intact, the stored rows' digests are those of the
    re-derived rows, made from per-page parts (`row_lines`); otherwise the check's
    stored digests are None, for the caller to compute in SQL."""
    bad = tuple(page.seq for page in pages if not page.intact)
    derived = observations_table(
        run.workspace,
        [page.page for page in pages],
        memo=cache.memo,
        roles_by_uuid=joins_roles_by_uuid(run.tool_version),
    )
    # The usual case, every digested column the same, in one comparison.
    same = _same_rows(derived, stored, OBSERVATION_COLUMNS + IDENTITY_COLUMNS)
    same_observations = same or _same_rows(derived, stored, OBSERVATION_COLUMNS)
    same_identity = same or _same_rows(derived, stored, IDENTITY_DIGESTED)
    unknown = {"stored_sha256": None, "stored_identity_sha256": None}
    if same_observations and same_identity:
        found = None
        if not bad and stored is not None:
            found = row_lines.run_digests(conn, [page.page for page in pages], derived, cache.parts)
        if found is None:
            return PageCheck(run.run_id, bad, None, None, **unknown)
        return PageCheck(run.run_id, bad, None, None, *found)
    observations, identity = rederived_digests(conn, run.run_id, derived)
    return PageCheck(
        run.run_id,
        bad,
        None if same_observations else observations,
        None if same_identity else identity,
        **unknown,
    )


# The columns identity_sha256 covers (digests/identity_sha256.sql).
IDENTITY_DIGESTED = ["account_id", "uuid", *IDENTITY_COLUMNS]


def _same_rows(derived: pa.Table, stored: pa.Table | None, columns: list[str]) -> bool:
    """The same rows over `columns`, in any order (both sorted by every column)."""
    if stored is None:
        return derived.num_rows == 0
    if stored.num_rows != derived.num_rows:
        return False
    mine = derived.select(columns)
    theirs = stored.select(columns).cast(mine.schema)
    if mine.equals(theirs):  # the usual case: stored in the order normalise gave them
        return True
    order = [(name, "ascending") for name in columns]
    return mine.sort_by(order).equals(theirs.sort_by(order))


def _by_run(table: pa.Table) -> dict[str, pa.Table]:
    """{run_id: its rows}; rows come back run after run, so mostly by slicing."""
    if table.num_rows == 0:  # e.g. a chunk of failed runs only
        return {}
    # By dictionary codes: the ids as Python strings would be one object per row.
    encoded = table["run_id"].combine_chunks().dictionary_encode()
    names = encoded.dictionary.to_pylist()
    runs = encoded.indices.to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(runs[1:] != runs[:-1]) + 1).tolist(), len(runs)]
    blocks = [(int(runs[start]), start, end) for start, end in itertools.pairwise(starts)]
    if len({run for run, _start, _end in blocks}) == len(blocks):
        return {names[run]: table.slice(start, end - start) for run, start, end in blocks}
    return {name: table.filter(pa.array(runs == run)) for run, name in enumerate(names)}


def stored_pages(conn: duckdb.DuckDBPyConnection, run: RunPages) -> list[StoredPage]:
    """The run's pages in seq order (a page whose body is not intact has an empty body)."""
    # One run: only its own bodies are read, not the scan of the whole file verify makes.
    only_its_own = BodyCache(max_bytes=0)
    return _read_chunk(conn, Chunk((run,), exact=False), only_its_own).get(run.run_id, [])


def rederived_digests(
    conn: duckdb.DuckDBPyConnection, run_id: str, derived: pa.Table
) -> tuple[str, str]:
    """(observations_sha256, identity_sha256) of re-derived rows (`observations_table`), by
    the same SQL as on load."""
    if derived.num_rows == 0:
        return hashing.EMPTY_SHA256, hashing.EMPTY_SHA256
    observations, identity = _digests_of(conn, frames.observations_table(run_id, derived))
    return (
        observations.get(run_id, hashing.EMPTY_SHA256),
        identity.get(run_id, hashing.EMPTY_SHA256),
    )


def _read_chunk(
    conn: duckdb.DuckDBPyConnection, chunk: Chunk, cache: BodyCache
) -> dict[str, list[StoredPage]]:
    """{run_id: [StoredPage, …] in seq order} for the chunk's runs."""
    if chunk.lo is None:
        return {}
    sql = (
        "SELECT run_id, seq, sha256, listing, url, status_code, fetched_at "
        f"FROM {PAGES} WHERE rowid BETWEEN ? AND ?"
    )
    params: list[object] = [chunk.lo, chunk.hi]
    if not chunk.exact:
        sql += " AND run_id = ?"
        params.append(chunk.runs[0].run_id)
    rows = conn.execute(sql, params).fetchall()
    cache.load(conn, {row[2] for row in rows})
    by_run: dict[str, list[StoredPage]] = {}
    for run_id, seq, sha256, *page in rows:
        body = cache.good.get(sha256)
        # An intact body hashes to the page's sha256, so the parse memo may key it by that;
        # any other page is parsed as what it is: no body.
        stored = StoredPage(
            RawPage(*page, body=body or b"", sha256=sha256 if body is not None else ""),
            seq,
            sha256,
            intact=body is not None,
        )
        by_run.setdefault(run_id, []).append(stored)
    for pages in by_run.values():
        pages.sort(key=lambda page: page.seq)
    return by_run
