"""verify: recompute every hash and the chain, and re-derive observations from raw pages.

    result = verify_chain("evidence.duckdb")
    if not result.ok:
        print(result.first_bad_run_id, result.summary())   # names the FIRST bad run
    diff = rederive(store.conn, run_id)                    # stored vs re-derived observations

A run is bad when any of these fails (checked for every run, in chain order):
page body vs its sha256; raw_sha256 vs the pages; stored observations vs
observations_sha256; observations re-derived from the raw pages vs observations_sha256; the
same two for the identity columns and identity_sha256 (a run recorded before bb2sv stored
them must have none); sha256(policy_text) vs policy_sha256; run_hash vs the record;
prev_run_hash vs the previous run's run_hash (and seq continuity). Rows whose run_id has no
run are reported last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from tasks.canonical import sha256_hex
from tasks.evidence import frames, hashing, page_checks, page_pool
from tasks.evidence.connection import translate
from tasks.evidence.errors import IntegrityError
from tasks.evidence.problems import RunProblem
from tasks.evidence.run_record import RunRecord
from tasks.evidence.signing import stored_signatures
from tasks.evidence.store import EvidenceStore
from tasks.identity import IDENTITY_POLICY_COLUMNS, identity_record
from tasks.normalise import (
    IDENTITY_COLUMNS,
    OBSERVATION_COLUMNS,
    joins_roles_by_uuid,
    observations_table,
)


@dataclass(slots=True)
class ChainVerification:
    runs_checked: int = 0
    problems: list[RunProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_run_id(self) -> str | None:
        return self.problems[0].run_id if self.problems else None

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.runs_checked} runs, every hash and link verified."
        first = self.problems[0]
        same = [p.what for p in self.problems if p.run_id == first.run_id]
        where = f"seq {first.seq}" if first.seq is not None else "no such run"
        return (
            f"FAILED: first bad run {first.run_id} ({where}): " + "; ".join(same) + f". "
            f"{len(self.problems)} problem(s) in total over {self.runs_checked} runs."
        )

    def raise_for_problems(self) -> None:
        if not self.ok:
            raise IntegrityError(self.summary())


@dataclass(frozen=True, slots=True)
class Rederivation:
    run_id: str
    digest: str
    missing: pd.DataFrame  # derived from pages but not stored
    unexpected: pd.DataFrame  # stored but not derivable from pages

    @property
    def matches(self) -> bool:
        return self.missing.empty and self.unexpected.empty


def verify_chain(
    path: str | PathLike[str], *, lock_timeout_s: float = 30.0, workers: int | None = None
) -> ChainVerification:
    """Recompute everything for every run, read-only; never raises for tampering with rows
    (a file whose tables were dropped or changed raises IntegrityError as it opens).

    `workers`: processes that re-hash and re-derive the pages, this one included (default:
    one per CPU, at most 8, when the file holds ≥ 2,000 pages; 0 or 1: only this one).
    """
    path = Path(path)
    with EvidenceStore.open(path, read_only=True, lock_timeout_s=lock_timeout_s) as store:
        try:
            return chain_problems(store.conn, path, workers)
        except duckdb.Error as exc:
            raise translate(exc, path, action="verify") from None


def rederive(conn: duckdb.DuckDBPyConnection, run_id: str) -> Rederivation:
    """Re-run normalise on the run's stored raw pages and compare with the stored rows
    (with the identity columns, unless the run was recorded before bb2sv stored them)."""
    located = [run for run in page_checks.run_locations(conn) if run.run_id == run_id]
    if not located:
        raise IntegrityError(f"No run {run_id} in the evidence file.")
    run = located[0]
    pages = [stored.page for stored in page_checks.stored_pages(conn, run)]
    derived = observations_table(
        run.workspace, pages, roles_by_uuid=joins_roles_by_uuid(run.tool_version)
    )
    (identity_sha256,) = conn.execute(
        "SELECT identity_sha256 FROM collection_runs WHERE run_id = ?", [run_id]
    ).fetchall()[0]
    compared = OBSERVATION_COLUMNS + (IDENTITY_COLUMNS if identity_sha256 is not None else [])
    conn.register("_bb2sv_rederived", frames.observations_table(run_id, derived))
    try:
        digest = hashing.digests(conn, "observations", "_bb2sv_rederived")
        columns = ", ".join(compared)
        stored = f"(SELECT {columns} FROM member_2sv_observations WHERE run_id = ?)"
        derived = f"(SELECT {columns} FROM _bb2sv_rederived)"
        missing = conn.execute(f"{derived} EXCEPT ALL {stored}", [run_id]).df()
        unexpected = conn.execute(f"{stored} EXCEPT ALL {derived}", [run_id]).df()
    finally:
        conn.unregister("_bb2sv_rederived")
    return Rederivation(run_id, digest.get(run_id, hashing.EMPTY_SHA256), missing, unexpected)


def chain_problems(
    conn: duckdb.DuckDBPyConnection, path: Path, workers: int | None = None
) -> ChainVerification:
    """verify_chain on an open (read-only) store connection."""
    runs = conn.execute("SELECT * FROM collection_runs ORDER BY seq").df()
    result = ChainVerification(runs_checked=len(runs))
    locations = page_checks.run_locations(conn)
    with page_pool.checking_pages(conn, path, locations, workers=workers) as page_results:
        # Whole-table digests in this process while the workers read the page bodies.
        raw = hashing.digests(conn, "raw", "raw_api_responses")
        with_identity = _runs_with_identity_values(conn)
        policies = _policies(conn)
        signatures = stored_signatures(conn)
        checked = page_results()
    # The stored rows' digests were computed with the pages, run by run.
    stored_obs = {run_id: check.stored_sha256 for run_id, check in checked.items()}
    stored_identity = {run_id: check.stored_identity_sha256 for run_id, check in checked.items()}

    prev_hash, prev_seq, prev_signed = hashing.GENESIS_HASH, 0, None
    for run in runs.to_dict("records"):
        run = {key: (None if _is_null(value) else value) for key, value in run.items()}
        run_id, seq = run["run_id"], int(run["seq"])
        problems: list[str] = []
        if run["prev_run_hash"] != prev_hash or seq != prev_seq + 1:
            problems.append(
                f"chain broken: prev_run_hash/seq do not follow the run at seq {prev_seq} "
                "(a run was deleted, inserted or reordered before this one)"
            )
        pages = checked[run_id]
        for page_seq in pages.bad_body_seqs:
            problems.append(
                f"raw page {page_seq}: body does not match its sha256 (edited, deleted, or "
                "patched from a base body that was)"
            )
        if raw.get(run_id, hashing.EMPTY_SHA256) != run["raw_sha256"]:
            problems.append(
                "raw_sha256 does not match the stored pages (page deleted, "
                "added, reordered or its metadata edited)"
            )
        if stored_obs.get(run_id, hashing.EMPTY_SHA256) != run["observations_sha256"]:
            problems.append(
                "stored observations do not match observations_sha256 (edited, "
                "deleted or added rows)"
            )
        rederived = pages.rederived_sha256
        if rederived is None:  # the very rows stored: their digest is the stored one
            rederived = stored_obs.get(run_id, hashing.EMPTY_SHA256)
        if rederived != run["observations_sha256"]:
            problems.append(
                "observations re-derived from the raw pages differ from observations_sha256"
            )
        problems += _identity_problems(run, stored_identity, with_identity, pages)
        policy = policies.get(run_id)
        if policy is None:
            problems.append("no run_policies row")
        else:
            if sha256_hex(policy["text"]) != run["policy_sha256"] or (
                policy["sha"] != run["policy_sha256"]
            ):
                problems.append("policy text does not match policy_sha256")
            signed = signatures.get(run_id)
            record = RunRecord.from_row(
                run,
                policy["record"],
                signing_key_id=None if signed is None else signed.key_id,
                prev_signature=None if prev_signed is None else prev_signed.signature,
            )
            if record.expected_hash() != record.run_hash:
                problems.append(
                    "run_hash does not match the run record, digests and policy (a run field, "
                    "its stored policy, its signature row or the previous run's signature was "
                    "edited)"
                )
        result.problems.extend(RunProblem(run_id, seq, what) for what in problems)
        prev_hash, prev_seq, prev_signed = run["run_hash"], seq, signatures.get(run_id)
    result.problems.extend(_orphans(conn))
    return result


def _policies(conn: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    exceptions: dict[str, list[dict]] = {}
    for item in conn.execute("SELECT * FROM policy_exceptions").df().to_dict("records"):
        item = {key: (None if _is_null(value) else value) for key, value in item.items()}
        exceptions.setdefault(item.pop("run_id"), []).append(item)
    out = {}
    for row in conn.execute("SELECT * FROM run_policies").fetchdf().to_dict("records"):
        record = hashing.policy_record(
            grace_days=row["grace_days"],
            sla_days=row["sla_days"],
            severities=(row["severity_owner"], row["severity_member"], row["severity_unknown"]),
            exceptions=exceptions.get(row["run_id"], []),
            identity=identity_record(
                **{name: _stored(row[name]) for name in IDENTITY_POLICY_COLUMNS}
            ),
        )
        out[row["run_id"]] = {
            "text": row["policy_text"],
            "sha": row["policy_sha256"],
            "record": record,
        }
    return out


def _identity_problems(
    run: dict,
    stored: dict[str, str],
    with_values: set[str],
    pages: page_checks.PageCheck,
) -> list[str]:
    """The identity columns against identity_sha256, or, for a run recorded before bb2sv
    stored them, the absence of any value there (a value would change who is in scope)."""
    expected = run["identity_sha256"]
    if expected is None:
        if run["run_id"] in with_values:
            return ["identity columns set on observations of a run recorded without them (edited)"]
        return []
    problems = []
    if stored.get(run["run_id"], hashing.EMPTY_SHA256) != expected:
        problems.append(
            "stored identity columns do not match identity_sha256 (account type, kind or "
            "directory facts edited)"
        )
    rederived = pages.rederived_identity_sha256
    if rederived is None:  # the very rows stored
        rederived = stored.get(run["run_id"], hashing.EMPTY_SHA256)
    if rederived != expected:
        problems.append(
            "identity columns re-derived from the raw pages differ from identity_sha256"
        )
    return problems


def _runs_with_identity_values(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Runs with any identity column set on any observation."""
    where = " OR ".join(f"{column} IS NOT NULL" for column in IDENTITY_COLUMNS)
    rows = conn.execute(
        f"SELECT DISTINCT run_id FROM member_2sv_observations WHERE {where}"
    ).fetchall()
    return {run_id for (run_id,) in rows}


def _orphans(conn: duckdb.DuckDBPyConnection) -> list[RunProblem]:
    rows = conn.execute(
        """
        SELECT DISTINCT run_id, 'raw pages' AS kind FROM raw_api_responses
        WHERE run_id NOT IN (SELECT run_id FROM collection_runs)
        UNION ALL
        SELECT DISTINCT run_id, 'page bodies' FROM raw_page_bodies
        WHERE run_id NOT IN (SELECT run_id FROM collection_runs)
        UNION ALL
        SELECT DISTINCT run_id, 'observations' FROM member_2sv_observations
        WHERE run_id NOT IN (SELECT run_id FROM collection_runs)
        ORDER BY 1, 2
        """
    ).fetchall()
    unused = conn.execute(
        """
        SELECT DISTINCT b.run_id, r.seq FROM raw_page_bodies AS b
        JOIN collection_runs AS r USING (run_id)
        WHERE b.sha256 NOT IN (SELECT sha256 FROM raw_api_responses)
          AND b.sha256 NOT IN (SELECT base_sha256 FROM raw_page_bodies WHERE patch IS NOT NULL)
        ORDER BY 2
        """
    ).fetchall()
    # bb2sv stores each body once: a second row of a hash (even with the right bytes) was
    # added by hand, and raw_api_pages would list its pages twice.
    repeated = conn.execute(
        """
        SELECT b.run_id, r.seq, b.sha256, b.copies
        FROM (
            SELECT max(run_id) AS run_id, sha256, count(*) AS copies FROM raw_page_bodies
            GROUP BY sha256 HAVING count(*) > 1
        ) AS b
        LEFT JOIN collection_runs AS r USING (run_id)
        ORDER BY 2, 3
        """
    ).fetchall()
    added = [
        RunProblem(
            run_id,
            seq,
            f"a page body stored with run {run_id} is no page's body nor any patch's base "
            "(added, or its page's sha256 was edited)",
        )
        for run_id, seq in unused
    ] + [
        RunProblem(
            run_id,
            seq,
            f"page body {sha256} is stored {copies} times (bb2sv stores each body once: "
            "rows were added by hand)",
        )
        for run_id, seq, sha256, copies in repeated
    ]
    return added + [
        RunProblem(
            run_id,
            None,
            f"{kind} stored for run {run_id}, which is not in "
            "collection_runs (its run record was deleted)",
        )
        for run_id, kind in rows
    ]


def _stored(value: object) -> object:
    """A stored value as plain Python: list columns arrive as numpy arrays, NULL as None/NaN."""
    if isinstance(value, np.ndarray | list):
        return list(value)
    return None if _is_null(value) else value


def _is_null(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
