"""The hash chain: how raw pages, observations, the policy and the run record are digested.

Definitions (also in README.md):

* page `sha256`       = SHA-256 of the body bytes as received.
* `raw_sha256`        = digests/raw_sha256.sql (page metadata + page sha256, in seq order).
* `observations_sha256` = digests/observations_sha256.sql (sorted canonical JSON lines).
* `identity_sha256`   = digests/identity_sha256.sql (the same, over the identity columns);
  NULL for runs recorded before bb2sv stored them.
* `policy_sha256`     = SHA-256 of the policy YAML text (Policy.sha256).
* `run_hash`          = see `tasks.evidence.run_record.RunRecord` (prev_run_hash is the
  previous run's run_hash (seq - 1), or GENESIS_HASH for the first run).

On load, the lines of the new run's rows are made from its Arrow columns (`json_lines.py`);
verify makes a run's lines from its pages' JSON parts (`row_lines.py`). Both are checked
against the SQL above on every kind of text, and both leave to the SQL, over the rows, what
they cannot make. Either way `sorted_digest` sorts, joins and hashes one run's lines::

    digests(conn, "observations", "member_2sv_observations")  # {run_id: hex}
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tasks.arrow_text import text_of
from tasks.canonical import sha256_hex
from tasks.evidence import json_lines
from tasks.evidence.connection import in_memory

GENESIS_HASH = "0" * 64
EMPTY_SHA256 = sha256_hex(b"")
_DIGESTS_DIR = Path(__file__).parent / "digests"

DigestKind = Literal["raw", "observations", "identity"]
_NEWLINE = pa.scalar("\n", pa.large_string())


@cache
def _digest_sql(kind: DigestKind) -> str:
    return (_DIGESTS_DIR / f"{kind}_sha256.sql").read_text(encoding="utf-8")


def digests(conn: duckdb.DuckDBPyConnection, kind: DigestKind, relation: str) -> dict[str, str]:
    """Digest per run_id of `relation` (a table name or a parenthesised sub-query we wrote)."""
    if kind == "raw":
        sql = _digest_sql(kind).replace("{pages}", relation)
        return dict(conn.execute(sql).fetchall())
    lines = conn.sql(_digest_sql(kind).replace("{observations}", relation)).to_arrow_table()
    return sorted_lines_digests(lines)


def sorted_lines_digests(lines: pa.Table) -> dict[str, str]:
    """{run_id: `sorted_digest` of its `line`s} of a table of (run_id, line)."""
    if lines.num_rows == 0:
        return {}
    encoded = lines["run_id"].combine_chunks().dictionary_encode()
    runs = encoded.indices.to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(runs[1:] != runs[:-1]) + 1).tolist(), len(runs)]
    column = lines["line"].combine_chunks()
    if len(starts) - 1 != len(encoded.dictionary):  # a run's lines apart: bring them together
        order = pc.sort_indices(encoded.indices)
        runs, column = runs[order.to_numpy()], column.take(order)
        starts = [0, *(np.flatnonzero(runs[1:] != runs[:-1]) + 1).tolist(), len(runs)]
    names = encoded.dictionary.to_pylist()
    return {
        names[runs[start]]: sorted_digest(column.slice(start, end - start))
        for start, end in itertools.pairwise(starts)
    }


def sorted_digest(lines: pa.Array, *, ended: bool = False) -> str:
    """SHA-256 (hex) of the lines sorted (by their UTF-8 bytes, as DuckDB's ORDER BY on
    VARCHAR sorts them) and joined by "\n", in one buffer hashed in place.

    `ended`: each line already ends with "\n" (`json_lines`' `ending`). The sorted lines'
    own buffer is then the text to hash, but for its last byte; the order is the same, as a
    digest line holds no byte below 0x20 (JSON escapes them), so "\n" sorts below any byte
    that could follow it."""
    if len(lines) == 0:
        return EMPTY_SHA256
    order = pc.sort_indices(lines)
    if ended:
        # Sorted a stretch at a time: no second copy of every line at once (the load's
        # digests run beside its inserts, and 100,000 lines are ~25 MB).
        digest, text = hashlib.sha256(), memoryview(b"")
        for start in range(0, len(lines), _SORTED_STRETCH):
            if text:
                digest.update(text)
            text = text_of(lines.take(order.slice(start, _SORTED_STRETCH)))
        if text[-1:] != b"\n":
            raise ValueError("sorted_digest(ended=True) was given a line without its newline")
        digest.update(text[:-1])
        return digest.hexdigest()
    lines = lines.take(order)
    wide = lines.nbytes >= 2**31 - len(lines)  # offsets of the joined text past int32
    lines = lines.cast(pa.large_string() if wide else pa.string())
    lists = pa.LargeListArray if wide else pa.ListArray
    offsets = pa.array([0, len(lines)], pa.int64() if wide else pa.int32())
    joined = pc.binary_join(lists.from_arrays(offsets, lines), _NEWLINE.cast(lines.type))
    return hashlib.sha256(text_of(joined)).hexdigest()


_SORTED_STRETCH = 8_192  # lines


@dataclass(frozen=True, slots=True)
class RunDigests:
    raw_sha256: str
    observations_sha256: str
    identity_sha256: str


def run_digests_apart(run_id: str, pages: pa.Table, observations: pa.Table) -> RunDigests:
    """A new run's digests from its Arrow tables (pages without bodies; the run's own
    observations), computed in a private in-memory database of this process: nothing stored
    in an evidence file takes part. Each call has a connection of its own, so calls from
    several threads do not meet (the tables registered here are the connection's)."""
    conn = _private_database().cursor()
    try:
        conn.register("_bb2sv_pages", pages)
        conn.register("_bb2sv_obs", observations)
        return RunDigests(
            digests(conn, "raw", "_bb2sv_pages").get(run_id, EMPTY_SHA256),
            _lines_digest(conn, run_id, observations, "observations"),
            _lines_digest(conn, run_id, observations, "identity"),
        )
    finally:
        conn.close()
        # The lines sorted and joined above were Arrow buffers: give their memory back now,
        # before the store's commit needs its own (~50 MiB at 100,000 members).
        pa.default_memory_pool().release_unused()


def _lines_digest(
    conn: duckdb.DuckDBPyConnection, run_id: str, observations: pa.Table, kind: DigestKind
) -> str:
    """One kind of a new run's digest: its lines made with Arrow, or in SQL where those
    cannot be (`json_lines`). The lines are let go on return, before the next are made."""
    make = json_lines.observation_lines if kind == "observations" else json_lines.identity_lines
    lines = make(conn, observations, ending="\n")
    if lines is None:
        return digests(conn, kind, "_bb2sv_obs").get(run_id, EMPTY_SHA256)
    try:
        return sorted_digest(lines, ended=True)
    finally:
        del lines
        pa.default_memory_pool().release_unused()  # before the next lines are made


# By process id: a forked child makes its own. The parent's stays referenced in the child:
# dropping it there would run DuckDB's shutdown, which waits for threads the fork did not
# copy (the child hangs).
_PRIVATE: dict[int, duckdb.DuckDBPyConnection] = {}
_PRIVATE_LOCK = threading.Lock()


def _private_database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory database for digests, made on first use: starting a DuckDB
    instance takes ~15 ms, as long as the digests of a small run. It never attaches a file
    and holds nothing between calls."""
    with _PRIVATE_LOCK:
        conn = _PRIVATE.get(os.getpid())
        if conn is None:
            # A second thread does not shorten the digests, even of 100,000 members
            # (0.25 s either way), and costs a third more CPU.
            conn = _PRIVATE[os.getpid()] = in_memory(one_thread=True)
        return conn


def policy_record(
    *,
    grace_days: int,
    sla_days: int,
    severities: tuple[str, str, str],
    exceptions: list[dict[str, Any]],
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored policy numbers, exceptions and identity rules (`identity_record`), so
    editing run_policies breaks run_hash."""
    canonical = [
        {
            "workspace": item["workspace"],
            "account_id": item["account_id"],
            "nickname": item["nickname"],
            "reason": item["reason"],
            "approved_by": item["approved_by"],
            "ticket": item["ticket"],
            "expires_on": _iso_date(item["expires_on"]),
        }
        for item in exceptions
    ]
    canonical.sort(key=lambda item: orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    return {
        "grace_days": int(grace_days),
        "sla_days": int(sla_days),
        "severity_owner": severities[0],
        "severity_member": severities[1],
        "severity_unknown": severities[2],
        "exceptions": canonical,
        **(identity or {}),
    }


def _iso_date(value: date | datetime | str) -> str:
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, date) else str(value)
