"""Page bodies stored once each, most of them as a patch of an earlier body (migration 0006).

Writing, inside a run's transaction::

    store_bodies(conn, run_id, workspace, extract.pages)   # inserts the rows the run adds

A body already in the file is not stored again. A new body is patched against the body its
page had in the workspace's previous complete run (same listing and URL, else the same
place in the listing), or rather against the whole body that one is a patch of, so that a
patch never needs another patch to come back; when no patch is small enough the body is
stored whole, compressed (`body_zlib`, `tasks.page_encoding`; migration 0008), and becomes
the base of the days after it.

Reading (verify, rederive)::

    for row in body_rows(conn, table, "WHERE sha256 IN (SELECT unnest(?))", [shas]):
        # BodyRow: sha256, run_id, base_sha256, stored, compressed, patch; row.body expands
        body = rebuild(row, bases)          # None when its base is missing or the patch is bad
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from tasks import page_encoding
from tasks.bitbucket.models import RawPage
from tasks.canonical import sha256_hex
from tasks.evidence.errors import IntegrityError
from tasks.evidence.page_patch import apply_patch, make_patch


@dataclass(frozen=True, slots=True)
class BodyRow:
    sha256: str
    run_id: str
    base_sha256: str | None
    stored: bytes | None  # the row's body (as it arrived) or body_zlib; None for a patch
    compressed: bool  # `stored` is body_zlib
    patch: list[dict] | None

    @property
    def body(self) -> bytes | None:
        """The body as it arrived, expanded on each call (not kept: an edited file may hold
        many rows that expand large); None for a patch, or a body that cannot be expanded."""
        return expanded_page_body(self.stored) if self.compressed else self.stored


def store_bodies(
    conn: duckdb.DuckDBPyConnection, run_id: str, workspace: str, pages: list[RawPage]
) -> None:
    """Insert the raw_page_bodies rows a new run adds: its bodies the file does not hold yet.

    Bound as parameters, ROWS_PER_INSERT rows a statement, not read from Arrow: DuckDB keeps
    a bound `bytes` once, while a body read from an Arrow column cost it two to three times
    the body's size until the commit (a 100,000-member run carries about 190 MB of JSON,
    ~23 MB compressed). `executemany` would bind them too, but re-plans each row (four
    times slower).
    """
    new: dict[str, RawPage] = {}
    for page in pages:
        # Bodies are found by this hash from now on. A page that hashed its own body when
        # it was made (RawPage without a sha256, as extraction makes them) needs no second
        # look; one given its sha256 (the spool, a caller) is checked, each one, even when
        # an earlier page carries the same hash.
        if not page.sha256_of_body and sha256_hex(page.body) != page.sha256:
            raise IntegrityError(
                f"A {page.listing} page of the {workspace} run ({page.url}) carries sha256 "
                f"{page.sha256}, which is not the SHA-256 of its body: the extract (or the "
                "spool file it was read from) was altered. Nothing was stored."
            )
        new.setdefault(page.sha256, page)
    if new:
        held = conn.execute(
            "SELECT DISTINCT sha256 FROM raw_page_bodies WHERE sha256 IN (SELECT unnest(?))",
            [list(new)],
        ).fetchall()
        for (sha,) in held:
            del new[sha]
    bases = _previous_bases(conn, run_id, workspace, list(new.values()), pages)
    rows = (_row(sha, page, bases) for sha, page in new.items())
    # Rows of one kind at a time, in order, each naming only its own columns (and run_id
    # once): fewer parameters for DuckDB to plan.
    for columns, alike in itertools.groupby(rows, key=lambda row: row[0]):
        while part := list(itertools.islice(alike, ROWS_PER_INSERT)):
            width = len(columns)
            places = (
                "($1, " + ", ".join(f"${2 + width * n + k}" for k in range(width)) + ")"
                for n in range(len(part))
            )
            conn.execute(
                f"INSERT INTO raw_page_bodies (run_id, {', '.join(columns)}) "
                f"VALUES {', '.join(places)}",
                [run_id, *(value for _columns, *values in part for value in values)],
            )


ROWS_PER_INSERT = 50
_WHOLE_ZLIB = ("sha256", "body_zlib")
_WHOLE = ("sha256", "body")
_PATCH = ("sha256", "base_sha256", "patch")


def _row(sha: str, page: RawPage, bases: dict) -> tuple:
    """(its columns, their values): a patch of its base, or the body whole: compressed,
    unless it would not expand back within a reader's bounds (`page_encoding.expands_back`:
    larger than any page, or far more compressible than one), then as it arrived. Reads
    back from disk check themselves (spill.py)."""
    base = bases.get(sha)
    ops = None if base is None else make_patch(base[1], page.body)
    if ops is not None:
        return (_PATCH, sha, base[0], [op._asdict() for op in ops])
    stored = page.compressed_body()
    if page_encoding.expands_back(stored, page.body_size):
        return (_WHOLE_ZLIB, sha, stored)
    return (_WHOLE, sha, page.body)


def _previous_bases(
    conn: duckdb.DuckDBPyConnection,
    run_id: str,
    workspace: str,
    new: list[RawPage],
    pages: list[RawPage],
) -> dict[str, tuple[str, bytes]]:
    """new body's sha256 → (sha256, bytes) of the whole body to patch it against."""
    if not new:
        return {}
    previous = conn.execute(
        """
        SELECT r.listing, r.url, coalesce(b.base_sha256, r.sha256) AS whole
        FROM raw_api_responses AS r
        JOIN raw_page_bodies AS b USING (sha256)
        WHERE r.run_id = (
            SELECT run_id FROM collection_runs
            WHERE workspace = ? AND status = 'complete' AND run_id <> ?
            ORDER BY seq DESC LIMIT 1
        ) AND r.status_code = 200
        ORDER BY r.seq
        """,
        [workspace, run_id],
    ).fetchall()
    if not previous:
        return {}
    by_url = {(listing, url): whole for listing, url, whole in previous}
    by_place: dict[tuple[str, int], str] = {}
    counted: dict[str, int] = {}
    for listing, _url, whole in previous:
        by_place[(listing, counted.get(listing, 0))] = whole
        counted[listing] = counted.get(listing, 0) + 1
    wanted: dict[str, str] = {}
    places: dict[str, int] = {}
    new_shas = {page.sha256 for page in new}
    for page in pages:
        place = places.get(page.listing, 0)
        places[page.listing] = place + 1
        if page.sha256 not in new_shas or page.sha256 in wanted:
            continue
        whole = by_url.get((page.listing, page.url)) or by_place.get((page.listing, place))
        if whole is not None:
            wanted[page.sha256] = whole
    if not wanted:
        return {}
    found = body_rows(
        conn,
        "raw_page_bodies",
        "WHERE patch IS NULL AND sha256 IN (SELECT unnest(?))",
        [sorted(set(wanted.values()))],
    )
    good = {}
    for row in found:
        body = row.body
        if body is not None and sha256_hex(body) == row.sha256:
            good[row.sha256] = body  # a base that does not hash to its name is not used
    return {sha: (whole, good[whole]) for sha, whole in wanted.items() if whole in good}


def body_rows(
    conn: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> Iterable[BodyRow]:
    """raw_page_bodies rows of `table` (the stored table's qualified name), streamed (a body
    is expanded when `BodyRow.body` is read); bodies fetched a few at a time (one fetchall
    of ~100 MB of bodies is pathologically slow in duckdb 2.0.1)."""
    result = conn.execute(
        f"SELECT sha256, run_id, base_sha256, body, patch, body_zlib FROM {table} {where}",
        params or [],
    )
    while rows := result.fetchmany(256):
        for sha, run_id, base, body, patch, body_zlib in rows:
            if (body is not None) + (patch is not None) + (body_zlib is not None) != 1:
                # Only a table rebuilt without its CHECK holds such a row: it gives no body
                # (as in the raw_api_pages view), and its pages fail verify.
                yield BodyRow(sha, run_id, base, None, False, None)
                continue
            stored = body if body_zlib is None else body_zlib
            yield BodyRow(
                sha, run_id, base, None if stored is None else bytes(stored),
                body_zlib is not None, patch,
            )  # fmt: skip


def expanded_page_body(body_zlib: bytes | None) -> bytes | None:
    """A body stored compressed (raw_page_bodies.body_zlib) as it arrived; None when there
    is none, or it cannot be expanded (an edited row: its page fails verify)."""
    if body_zlib is None:
        return None
    try:
        return page_encoding.decompress(bytes(body_zlib))
    except ValueError:
        return None


# The function a reader's `expanded_page_body` macro calls (`page_body_macro`).
PAGE_BODY_FUNCTION = "bb2sv_expanded_page_body"


def checked_page_body(body_zlib: bytes | None, sha256: str | None) -> bytes | None:
    """`expanded_page_body`, or None unless it hashes to `sha256`: a reader never shows an
    edited compressed body as the page's (verify reports it), and a vector of rows edited to
    expand large holds none of them."""
    body = expanded_page_body(body_zlib)
    return body if body is not None and sha256_hex(body) == sha256 else None


def give_page_body_function(conn: duckdb.DuckDBPyConnection) -> None:
    """`checked_page_body` as the function PAGE_BODY_FUNCTION of `conn` (once: a second
    call finds it there)."""
    # DuckDB says "already created" as NotImplementedException: this connection has it.
    with contextlib.suppress(duckdb.NotImplementedException):
        conn.create_function(
            PAGE_BODY_FUNCTION,
            checked_page_body,
            ["BLOB", "VARCHAR"],
            "BLOB",
            null_handling="special",
            side_effects=False,
        )


def page_body_macro(*, temporary: bool) -> str:
    """The `expanded_page_body` macro that calls PAGE_BODY_FUNCTION, in place of the file's
    (views/00_expanded_page_body.sql): the readers' catalog holds it, and a plain connection
    gets it as a temporary macro (`expand_in_plain_duckdb`)."""
    kind = "TEMP MACRO" if temporary else "MACRO"
    return (
        f"CREATE OR REPLACE {kind} expanded_page_body(body_zlib, sha256) AS "
        f"{PAGE_BODY_FUNCTION}(body_zlib, sha256)"
    )


def expand_in_plain_duckdb(conn: duckdb.DuckDBPyConnection) -> None:
    """Let a plain DuckDB connection to an evidence file read raw_api_pages' bodies: the
    function, and a temporary `expanded_page_body` macro that calls it in place of the
    file's (which raises for a compressed body). For people who open the file in Python::

        conn = duckdb.connect("evidence.duckdb", read_only=True)
        expand_in_plain_duckdb(conn)
        conn.sql("SELECT body FROM raw_api_pages")
    """
    give_page_body_function(conn)
    conn.execute(page_body_macro(temporary=True))


def rebuild(row: BodyRow, wholes: dict[str, bytes]) -> bytes | None:
    """The body `row` stands for; None when it cannot be rebuilt (base missing, bad patch)."""
    if row.patch is None:
        return row.body
    base = wholes.get(row.base_sha256)
    if base is None:
        return None
    try:
        return apply_patch(base, row.patch)
    except (ValueError, TypeError, KeyError):
        return None
