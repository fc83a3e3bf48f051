"""The steps after extraction for N members: store, daily report, violation events, artifacts.

    python benchmarks/post_steps.py 20000 flow    → one JSON line of figures
    python benchmarks/post_steps.py 20000 plain

The extract is handed over as extraction hands it over: each page already normalised as it
arrived (`normalise.PageDeriver`, which extraction runs while it waits for the next page;
that time is in the extraction figures of `collect_once.py`). Each step as the collection
runs it: as Prefect tasks inside a flow run against a temporary local API (Prefect's start
is not counted), or as plain calls (`bb2sv collect` with no Prefect API: store and report
only), each in a process of its own: the first report of a process also compiles the
report templates, which a path run after the other would not pay for. Each stored run is
appended to the anchor log, as both paths do by default (and in a flow run published as
the anchor artifact). In the flow, a task that waits EXTRACTION_STAND_IN_S stands in for
the extraction the steps follow. Two runs a day apart, so the second opens and resolves
violations as a daily run does; the second is the one measured. Each step's CPU seconds
(this process, all threads) are given beside its wall time: on a shared machine they move
less than the wall time does.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from common import Timer

from emulator.offline import make_extract
from emulator.world import WorkspaceSpec
from tasks.bitbucket.models import WorkspaceExtract
from tasks.evidence.run_record import RunRecord
from tasks.evidence.spool import StoreResult
from tasks.evidence.spool_file import SpoolSeal
from tasks.heap import freeze_imported_objects
from tasks.normalise import PageDeriver
from tasks.policy import DEFAULT_POLICY
from tasks.preflight import DEFAULT_ANCHOR_LOG
from tasks.step_functions import Destination, daily_report, record_attempt

DAY = date(2026, 11, 20)
EXTRACTION_STAND_IN_S = 2.0


class Clock(Timer):
    """Wall seconds (`seconds`) and this process's CPU seconds (`cpu`) of a block."""

    def __enter__(self) -> Clock:
        self.cpu_start = time.process_time()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.cpu = time.process_time() - self.cpu_start


def as_extracted(extract: WorkspaceExtract) -> WorkspaceExtract:
    """The extract with its pages normalised as extraction does, page by page on arrival."""
    deriver = PageDeriver()
    for page in extract.pages:
        deriver.add(page)
    extract.derived = deriver.finish()
    return extract


def anchored_record(result: StoreResult, to: Destination) -> RunRecord:
    """The stored run, once it is certain its anchor line was appended (a failed append is
    only a `reason`: the figures would leave its cost out unseen)."""
    assert result.record is not None and result.reason is None, result.reason
    assert to.anchor_log is not None
    lines = to.anchor_log.read_bytes().count(b"\n")
    assert lines == result.record.seq, (lines, result.record.seq)
    return result.record


def day_before_stored(members: int, folder: Path) -> tuple[Destination, str, WorkspaceExtract]:
    """Where the steps store (as `bb2sv collect` and the flow store by default: each stored
    run is also appended to `<reports>/anchors.jsonl`, in a flow run also published as the
    workspace's anchor artifact), with the day before stored; the reports folder; and the
    day's extract, as extraction hands it over."""
    spec = WorkspaceSpec("bench", members=members, seed=11)
    reports = folder / "reports"
    to = Destination(
        str(folder / "evidence.duckdb"),
        DEFAULT_POLICY,
        SpoolSeal(b"bench"),
        anchor_log=reports / DEFAULT_ANCHOR_LOG,
    )
    record_attempt(make_extract(spec, day=DAY.replace(day=19)), to)
    return to, str(reports), as_extracted(make_extract(spec, day=DAY))


def plain(members: int, folder: Path) -> dict:
    to, reports, extract = day_before_stored(members, folder)
    db = to.db_path
    with Clock() as store_t:
        result = record_attempt(extract, to)
    stored = anchored_record(result, to)
    with Clock() as report_t:
        daily_report(stored, db, reports)
    return {
        "store_s": store_t.seconds,
        "report_s": report_t.seconds,
        "cpu": {"store_s": store_t.cpu, "report_s": report_t.cpu},
    }


def in_flow(members: int, folder: Path) -> dict:
    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    from tasks.steps import (
        daily_report_task,
        emit_violation_events_task,
        publish_artifacts_task,
        record_run_task,
    )

    to, reports, extract = day_before_stored(members, folder)
    db = to.db_path

    @task(name="extraction-stand-in")
    def extraction_stand_in() -> None:
        """What the steps follow in a collection's flow run: its extraction task, mostly a
        wait on the network (seconds), by the end of which the API has long dealt with the
        flow run's start. No artifact: a collection's first is the store's anchor artifact."""
        time.sleep(EXTRACTION_STAND_IN_S)

    @flow(name="post-steps-benchmark")
    def post_steps() -> dict:
        extraction_stand_in()
        with Clock() as store_t:
            result = record_run_task(extract, to)
        stored = anchored_record(result, to)
        with Clock() as report_t:
            bundle = daily_report_task(stored, db, reports)
        with Clock() as events_t:
            sent = emit_violation_events_task(stored, db, bundle)  # as the flow calls it
        with Clock() as artifacts_t:
            publish_artifacts_task(stored, bundle)
        return {
            "store_s": store_t.seconds,
            "report_s": report_t.seconds,
            "events_s": events_t.seconds,
            "events": sent.opened + sent.resolved,
            "artifacts_s": artifacts_t.seconds,
            "cpu": {
                "store_s": store_t.cpu,
                "report_s": report_t.cpu,
                "events_s": events_t.cpu,
                "artifacts_s": artifacts_t.cpu,
            },
        }

    with prefect_test_harness(server_startup_timeout=120):
        return post_steps()


def _total(figures: dict) -> float:
    return sum(value for key, value in figures.items() if key.endswith("_s"))


PATHS = {"plain": plain, "flow": in_flow}


def main(members: int, path: str) -> dict:
    if path == "flow":
        # Imported before the freeze, as flows/collect.py imports Prefect and the tasks
        # before `run_collection` freezes what it imported.
        import prefect.testing.utilities  # noqa: F401

        import tasks.steps  # noqa: F401
    freeze_imported_objects()  # as the commands do once they have imported (tasks/heap.py)
    with tempfile.TemporaryDirectory() as tmp:
        figures = PATHS[path](members, Path(tmp))
    return {
        "members": members,
        path: {**figures, "total_s": _total(figures), "cpu_total_s": _total(figures["cpu"])},
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or sys.argv[2] not in PATHS:
        raise SystemExit(f"usage: post_steps.py MEMBERS {{{'|'.join(PATHS)}}}")
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2])))
