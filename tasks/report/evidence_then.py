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
from tasks.report.queries import frame
from tasks.vocabulary import RunStatus

__all__ = ["evidence_before", "states_written_from"]


def states_written_from(
    conn: duckdb.DuckDBPyConnection, document: dict[str, Any]
) -> list[tuple[str, int] | None] | str:
    """The states of the evidence the report may have been written from, most runs first:
    None is the evidence as it is, (run_id, seq) the evidence before that run was stored.
    Or, as text, why the report cannot have been written from any.

    A period report's manifest lists the complete runs of its window (`run_ids`). The
    evidence is append-only, so when it was written every run stored before one it lists
    was there, and no complete run of its window it does not list: it was written before
    the first of those was stored, and after, or before, each of the window's other runs
    stored since its last listed run (the report counts runs that did not complete)."""
    if document["kind"] != "period" or not isinstance(document.get("run_ids"), list):
        return [None]
    listed = set(document["run_ids"])
    window = frame(
        conn, "period_runs", workspace=document["workspace"],
        start=date.fromisoformat(document["start"]), end=date.fromisoformat(document["end"]),
    )  # fmt: skip
    runs = list(zip(window["run_id"], window["seq"].astype(int), window["status"], strict=True))
    last_listed = max((seq for run_id, seq, _ in runs if run_id in listed), default=0)
    unlisted = sorted(
        (seq, run_id)
        for run_id, seq, status in runs
        if status == RunStatus.COMPLETE and run_id not in listed
    )
    if unlisted and unlisted[0][0] < last_listed:
        named = next(run_id for run_id, seq, _ in runs if seq == last_listed)
        return (
            f"the report lists run {named} of its window but not run {unlisted[0][1]}, which "
            "was stored before it: a run was taken out of the report."
        )
    bound = unlisted[0][0] if unlisted else None
    since = sorted(
        ((seq, run_id) for run_id, seq, _ in runs if seq > last_listed),
        reverse=True,
    )
    states: list[tuple[str, int] | None] = [] if bound is not None else [None]
    states += [(run_id, seq) for seq, run_id in since if bound is None or seq <= bound]
    return states


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
