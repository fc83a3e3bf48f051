"""The evidence as it was when a report was written, for `bb2sv verify-report`'s rebuild.

    for before in states_written_from(conn, manifest):   # or, as text, why none can be
        with evidence_before(conn, before and before[1]):
            ...  # queries (the views' too) see only the runs stored before that one

The evidence is append-only and each run has a seq (its place in the chain), so the
evidence at any moment is the runs up to some seq.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import duckdb

from tasks.evidence.catalog import EVIDENCE
from tasks.vocabulary import RunStatus

__all__ = ["MAX_STATES", "evidence_before", "states_written_from"]

# A ceiling on the rebuilds one check may try (an honest report needs one, or a few more
# when runs were stored late): the most recent states are tried first.
MAX_STATES = 50


def states_written_from(
    conn: duckdb.DuckDBPyConnection, document: dict[str, Any]
) -> list[tuple[str, int] | None] | str:
    """The states of the evidence the report may have been written from, most runs first:
    None is the evidence as it is, (run_id, seq) the evidence before that run was stored.
    Or, as text, why the report cannot have been written from any.

    A report depends on its workspace's runs that started up to its day (its run's start,
    or the window's end); a run of those stored after the report was written (an attempt
    spooled, stored late) changes it. So each state before such a run, stored since the
    report's last run, is one it may have been written from. A period report's manifest
    lists the complete runs of its window (`run_ids`): when it was written every run stored
    before one it lists was there, and no complete run of its window it does not list."""
    if document["kind"] == "daily":
        return _daily_states(conn, document["run_id"])
    if not isinstance(document.get("run_ids"), list):
        return [None]
    listed = set(document["run_ids"])
    start, end = date.fromisoformat(document["start"]), date.fromisoformat(document["end"])
    runs = conn.execute(
        "SELECT run_id, seq, status, CAST(timezone('UTC', started_at) AS DATE) "
        "FROM collection_runs WHERE workspace = ? ORDER BY seq",
        [document["workspace"]],
    ).fetchall()
    last_listed = max((seq for run_id, seq, _, _ in runs if run_id in listed), default=0)
    unlisted = [
        (seq, run_id)
        for run_id, seq, status, day in runs
        if status == RunStatus.COMPLETE and start <= day <= end and run_id not in listed
    ]
    if unlisted and unlisted[0][0] < last_listed:
        named = next(run_id for run_id, seq, _, _ in runs if seq == last_listed)
        return (
            f"the report lists run {named} of its window but not run {unlisted[0][1]}, which "
            "was stored before it: a run was taken out of the report."
        )
    bound = unlisted[0][0] if unlisted else None
    since = [
        (run_id, seq)
        for run_id, seq, _, day in reversed(runs)
        if seq > last_listed and day <= end and (bound is None or seq <= bound)
    ]
    return (([None] if bound is None else []) + since)[:MAX_STATES]


def _daily_states(conn: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple[str, int] | None]:
    run = conn.execute(
        "SELECT workspace, seq, started_at FROM collection_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if run is None:
        return [None]
    later = conn.execute(
        "SELECT run_id, seq FROM collection_runs WHERE workspace = ? AND seq > ? "
        "AND started_at <= ? ORDER BY seq DESC",
        list(run),
    ).fetchall()
    return [None, *later][:MAX_STATES]


# The evidence tables whose rows belong to one run (by run_id).
_RUN_ROWS = ("member_run_states", "policy_exceptions", "raw_api_responses", "run_policies",
             "run_signatures")  # fmt: skip


@contextmanager
def evidence_before(conn: duckdb.DuckDBPyConnection, seq: int | None) -> Iterator[None]:
    """Within the block, queries (the views' too) see the evidence as it was before the run
    stored as `seq`: temporary views, ahead of the tables on the search path, keep only the
    runs stored before it and their rows. None: the evidence as it is."""
    if seq is None:
        yield
        return
    source = f"{EVIDENCE}.main"
    kept = f"SELECT run_id FROM {source}.collection_runs WHERE seq < {int(seq)}"
    views = {"collection_runs": f"SELECT * FROM {source}.collection_runs WHERE seq < {int(seq)}"}
    views |= {t: f"SELECT * FROM {source}.{t} WHERE run_id IN ({kept})" for t in _RUN_ROWS}
    try:
        for name, query in views.items():
            conn.execute(f"CREATE TEMP VIEW {name} AS {query}")
        yield
    finally:
        for name in views:
            conn.execute(f"DROP VIEW IF EXISTS temp.main.{name}")
