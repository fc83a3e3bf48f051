"""The collection without Prefect: the same steps, run in this process on a thread pool.

`bb2sv collect` takes this path when no Prefect API is configured (none in the environment,
the active Prefect profile, `.env`, prefect.toml or pyproject.toml: `tasks.prefect_api`), so
an ad-hoc run does not start Prefect's temporary server (about 10 s). Nothing here imports
Prefect. What needs a Prefect API is left out, and only that: task runs, events (no
automations could see them), artifacts, and the request budget shared with other runs of
the credential (this process paces itself).
The evidence, reports, anchor log, signatures, spool, retries and stops are the same.

    from flows.local import collect_locally
    collection = collect_locally(CollectionOptions(workspaces=["acme"]), setup)
    collection.whole
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from flows.collection import CollectionOptions, run_collection
from flows.outcomes import Collection
from tasks.evidence.run_record import RunRecord
from tasks.preflight import CollectionSetup
from tasks.report import ReportBundle

__all__ = ["LocalEngine", "collect_locally"]


class LocalEngine:
    """Steps as plain calls; background steps on a thread pool of this process."""

    run_id: str | None = None  # no Prefect flow run to point to

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.log = logging.getLogger("bb2sv.collect")

    def submit(self, step: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(step, *args)

    def next_done(self, handles: list[Future]) -> Future:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return next(handle for handle in handles if handle in done)  # the oldest first

    def outcome(self, handle: Future) -> object:
        error = handle.exception()
        return handle.result() if error is None else error

    def call(self, step: Callable[..., Any], *args: Any) -> Any:
        return step(*args)

    def announcements(
        self, stored: RunRecord, bundle: ReportBundle | None, db_path: str
    ) -> Sequence[tuple[str, Callable[..., Any], tuple[Any, ...]]]:
        return ()  # events and artifacts need a Prefect API

    def summary(self, collection: Collection) -> None:
        pass


def collect_locally(options: CollectionOptions, setup: CollectionSetup) -> Collection:
    """Run the collection in this process; `setup` is `preflight(...)` for `options`."""
    # The extractions running at once, and the directory read beside them.
    workers = options.max_concurrent_workspaces + 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="bb2sv-step")
    try:
        return run_collection(options, setup, LocalEngine(pool))
    finally:
        # A stop has ended every step's waits; nothing left running needs joining twice.
        pool.shutdown(wait=True, cancel_futures=True)
