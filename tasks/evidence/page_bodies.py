"""Page bodies stored once each, most of them as a patch of an earlier body (migration 0006).

Writing, inside a run's transaction::

    table = bodies_to_store(conn, run_id, workspace, extract.pages)   # new raw_page_bodies rows

A body already in the file is not stored again. A new body is patched against the body its
page had in the workspace's previous complete run (same listing and URL, else the same
place in the listing), or rather against the whole body that one is a patch of, so that a
patch never needs another patch to come back; when no patch is small enough the body is
stored whole, and becomes the base of the days after it.

Reading (verify, rederive)::

    for row in body_rows(conn, shas):       # BodyRow: sha256, run_id, base_sha256, body, patch
        body = rebuild(row, bases)          # None when its base is missing or the patch is bad
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tasks.bitbucket.models import RawPage
from tasks.canonical import sha256_hex
from tasks.evidence.errors import IntegrityError
from tasks.evidence.frames import body_column
from tasks.evidence.page_patch import apply_patch, make_patch

PATCH_TYPE = pa.list_(
    pa.struct([("offset", pa.int64()), ("length", pa.int64()), ("data", pa.large_binary())])
)
BODIES_SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("run_id", pa.string()),
        ("base_sha256", pa.string()),
        ("body", pa.large_binary()),
        ("patch", PATCH_TYPE),
    ]
)


@dataclass(frozen=True, slots=True)
class BodyRow:
    sha256: str
    run_id: str
    base_sha256: str | None
    body: bytes | None
    patch: list[dict] | None


def bodies_to_store(
    conn: duckdb.DuckDBPyConnection, run_id: str, workspace: str, pages: list[RawPage]
) -> Iterator[pa.Table]:
    """The raw_page_bodies rows a new run adds (its bodies the file does not hold yet), in
    slices of SLICE_ROWS: only one slice of bodies at a time is copied into Arrow (a
    100,000-member run carries about 190 MB of JSON)."""
    new: dict[str, RawPage] = {}
    for page in pages:
        if page.sha256 in new:
            continue
        if sha256_hex(page.body) != page.sha256:  # bodies are found by this hash from now on
            raise IntegrityError(
                f"A {page.listing} page of the {workspace} run ({page.url}) carries sha256 "
                f"{page.sha256}, which is not the SHA-256 of its body: the extract (or the "
                "spool file it was read from) was altered. Nothing was stored."
            )
        new[page.sha256] = page
    if new:
        held = conn.execute(
            "SELECT DISTINCT sha256 FROM raw_page_bodies WHERE sha256 IN (SELECT unnest(?))",
            [list(new)],
        ).fetchall()
        for (sha,) in held:
            del new[sha]
    bases = _previous_bases(conn, run_id, workspace, list(new.values()), pages)
    items = list(new.items())
    for start in range(0, len(items), SLICE_ROWS):
        yield _slice(run_id, items[start : start + SLICE_ROWS], bases)


SLICE_ROWS = 200


def _slice(run_id: str, items: list[tuple[str, RawPage]], bases: dict) -> pa.Table:
    rows: dict[str, list] = {name: [] for name in BODIES_SCHEMA.names}
    for sha, page in items:
        base = bases.get(sha)
        ops = None if base is None else make_patch(base[1], page.body)
        rows["sha256"].append(sha)
        rows["run_id"].append(run_id)
        rows["base_sha256"].append(None if ops is None else base[0])
        rows["body"].append(page.body if ops is None else None)
        rows["patch"].append(None if ops is None else [op._asdict() for op in ops])
    columns = {
        **rows,
        "body": body_column([body or b"" for body in rows["body"]]),
    }
    table = pa.table(columns, schema=BODIES_SCHEMA)
    # body_column cannot hold nulls; the patched rows' bodies are NULL in the table.
    mask = pa.array([body is None for body in rows["body"]], pa.bool_())
    return table.set_column(
        3, "body", pc.if_else(mask, pa.scalar(None, pa.large_binary()), table["body"])
    )


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
    found = dict(
        conn.execute(
            "SELECT sha256, any_value(body) FROM raw_page_bodies "
            "WHERE patch IS NULL AND sha256 IN (SELECT unnest(?)) GROUP BY sha256",
            [sorted(set(wanted.values()))],
        ).fetchall()
    )
    # A stored base that does not hash to its name (edited) is not built upon.
    good = {sha: bytes(body) for sha, body in found.items() if sha256_hex(bytes(body)) == sha}
    return {sha: (whole, good[whole]) for sha, whole in wanted.items() if whole in good}


def body_rows(
    conn: duckdb.DuckDBPyConnection, table: str, where: str = "", params: list | None = None
) -> Iterable[BodyRow]:
    """raw_page_bodies rows of `table` (the stored table's qualified name), streamed; bodies
    fetched a few at a time (one fetchall of ~100 MB of bodies is pathologically slow in
    duckdb 2.0.1)."""
    result = conn.execute(
        f"SELECT sha256, run_id, base_sha256, body, patch FROM {table} {where}", params or []
    )
    while rows := result.fetchmany(256):
        for sha, run_id, base, body, patch in rows:
            yield BodyRow(sha, run_id, base, None if body is None else bytes(body), patch)


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
