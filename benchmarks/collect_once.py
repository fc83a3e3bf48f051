"""One collection of N members against an emulator process: extract, load, daily report.

Extraction normalises each page as it arrives (`normalise.PageDeriver`), so the load's
normalise is what is left: joining the pages' parts. `normalise_on_arrival_s` is the work
extraction did meanwhile, timed alone (all pages normalised again, without the memo).

python benchmarks/collect_once.py 100000 0.05    → one JSON line of figures
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import TOKEN, Timer, emulator_process, peak_rss_mib

from tasks.bitbucket.auth import BearerToken
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.extract import extract_workspace
from tasks.bitbucket.tls import warm_tls_context
from tasks.evidence.store import EvidenceStore
from tasks.heap import freeze_imported_objects
from tasks.normalise import observations_from_pages
from tasks.policy import DEFAULT_POLICY
from tasks.report import write_daily_report
from tasks.vocabulary import RunStatus


def main(members: int, latency_s: float) -> dict:
    warm_tls_context()  # as `bb2sv collect` does when it starts
    freeze_imported_objects()  # and once it has imported its steps (tasks/heap.py)
    with emulator_process(members, latency_s) as base_url, tempfile.TemporaryDirectory() as tmp:
        # A budget above what the run needs: the pacer must not slow a benchmark of latency.
        settings = BitbucketSettings(
            api_url=base_url, auth=BearerToken(TOKEN), max_requests_per_hour=100_000
        )
        with Timer() as extract_t:
            extract = extract_workspace(settings, "bench")
        assert extract.status == RunStatus.COMPLETE, extract.error
        extraction_rss = peak_rss_mib()  # the extract holds its pages (bodies: on disk) to the load
        db = Path(tmp) / "evidence.duckdb"
        with EvidenceStore.open(db) as store, Timer() as load_t:
            stored = store.record_run(extract, policy=DEFAULT_POLICY)
        collection_rss = peak_rss_mib()  # extract + normalise + load
        with Timer() as normalise_t:  # the part of the load that is normalise, timed alone
            members = len(observations_from_pages("bench", extract.pages, memo=extract.derived))
        with Timer() as on_arrival_t:  # the work extraction did as the pages arrived
            observations_from_pages("bench", extract.pages)
        request_count = extract.request_count
        del extract  # the flow's daily report step reads only the evidence file
        with EvidenceStore.open(db, read_only=True) as store, Timer() as report_t:
            write_daily_report(store.conn, stored.run_id, Path(tmp) / "reports")
        return {
            "members": members,
            "requests": request_count,
            "extract_s": extract_t.seconds,
            "normalise_s": normalise_t.seconds,
            "normalise_on_arrival_s": on_arrival_t.seconds,
            "load_s": load_t.seconds,
            "report_s": report_t.seconds,
            "peak_rss_after_extraction_mib": extraction_rss,
            "peak_rss_mib": collection_rss,
            "peak_rss_with_report_mib": peak_rss_mib(),
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), float(sys.argv[2]))))
