"""Checking every run's pages, in worker processes too when the file is big.

    with checking_pages(conn, path, runs) as results:
        ...                           # other checks in this process, meanwhile
        checks = results()            # {run_id: PageCheck}

Workers are plain child processes (`python -m tasks.evidence.page_worker FILE`), not
multiprocessing: that would re-import the caller's __main__ in every child. Each has its own
read-only connection (DuckDB allows many reading processes) and is fed one chunk of runs at
a time by a thread of this process; this process checks chunks too once its other checks
are done (`results()`), so `workers=2` starts one child, not two idle-waiting ones.

Each participant works through its own stretch of the chain, in chain order: neighbouring
runs share most page bodies, and a body read, rebuilt, hashed and parsed by one participant
is in its cache for the next run (dealt round-robin, every participant would read and parse
nearly every body). One that is done takes from the far end of the stretch with the most
pages left, so no participant idles while another has a backlog.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import duckdb
import orjson

from tasks.evidence.errors import EvidenceError
from tasks.evidence.page_checks import BodyCache, Chunk, PageCheck, RunPages, check_chunk, chunks

# Below this many stored pages, starting worker processes (~1 s) costs more than it saves.
PARALLEL_MIN_PAGES = 2_000
MAX_WORKERS = 8


@contextmanager
def checking_pages(
    conn: duckdb.DuckDBPyConnection, path: Path, runs: list[RunPages], *, workers: int | None = None
) -> Iterator[Callable[[], dict[str, PageCheck]]]:
    """Start checking; the yielded function checks in this process too, and waits for
    {run_id: PageCheck}.

    workers: processes to use, this one included (default: one per CPU, at most MAX_WORKERS,
    when the runs hold ≥ PARALLEL_MIN_PAGES pages, else 0, which checks only in this process
    when the results are asked for).
    """
    work = list(chunks(runs))
    if workers is None:
        pages = sum(run.pages for run in runs)
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if pages >= PARALLEL_MIN_PAGES else 0
    workers = min(workers, len(work))
    cache = BodyCache()
    if workers <= 1:
        yield lambda: {
            check.run_id: check for chunk in work for check in check_chunk(conn, chunk, cache)
        }
        return
    stretches = Stretches(work, workers)
    pool = [_Worker(path) for _ in range(workers - 1)]
    threads = [
        threading.Thread(target=worker.drain, args=(stretches, part))
        for part, worker in enumerate(pool, start=1)
    ]
    try:
        for thread in threads:
            thread.start()

        def results() -> dict[str, PageCheck]:
            checks: dict[str, PageCheck] = {}
            while (chunk := stretches.take(0)) is not None:
                checks.update((check.run_id, check) for check in check_chunk(conn, chunk, cache))
            for thread in threads:
                thread.join()
            for worker in pool:
                if worker.failure:
                    raise EvidenceError(
                        f"Could not verify evidence file {path}: a page-checking worker "
                        f"failed ({worker.failure}). Run `bb2sv verify` again; if it fails "
                        "the same way, report it with this message."
                    )
                checks.update(worker.checks)
            return checks

        yield results
    finally:
        stretches.clear()  # on an early exit, let the feeding threads stop at once
        for thread in threads:
            if thread.is_alive():
                thread.join()
        for worker in pool:
            worker.stop()


class Stretches:
    """The chunks, in chain order, cut into one stretch per participant (about equal in
    pages); `take(part)` gives the next chunk of that participant's stretch, else the last
    chunk of the stretch with the most pages left, else None."""

    def __init__(self, work: list[Chunk], parts: int) -> None:
        total = sum(_pages(chunk) for chunk in work)
        self._parts: list[deque[Chunk]] = [deque() for _ in range(parts)]
        done = 0
        for chunk in work:
            self._parts[min(parts - 1, done * parts // max(total, 1))].append(chunk)
            done += _pages(chunk)
        self._lock = threading.Lock()

    def take(self, part: int) -> Chunk | None:
        with self._lock:
            if self._parts[part]:
                return self._parts[part].popleft()
            left = max(self._parts, key=lambda stretch: sum(map(_pages, stretch)))
            return left.pop() if left else None

    def clear(self) -> None:
        with self._lock:
            for stretch in self._parts:
                stretch.clear()


def _pages(chunk: Chunk) -> int:
    return sum(run.pages for run in chunk.runs)


class _Worker:
    """One worker process and the bookkeeping of what it has checked."""

    def __init__(self, path: Path) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the directory holding `tasks`
        paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(  # noqa: S603 (our own module, no shell)
            [sys.executable, "-m", "tasks.evidence.page_worker", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        )
        self.checks: dict[str, PageCheck] = {}
        self.failure: str | None = None

    def drain(self, stretches: Stretches, part: int) -> None:
        """Send chunks one at a time until none is left or something fails."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            while self.failure is None:
                chunk = stretches.take(part)
                if chunk is None:
                    return
                request = {"runs": [asdict(run) for run in chunk.runs], "exact": chunk.exact}
                self.process.stdin.write(orjson.dumps(request) + b"\n")
                self.process.stdin.flush()
                line = self.process.stdout.readline()
                if not line:
                    self.failure = f"exited with code {self.process.wait()}: {self._stderr()}"
                    return
                reply = orjson.loads(line)
                if "error" in reply:
                    self.failure = reply["error"]
                    return
                for item in reply["checks"]:
                    self.checks[item["run_id"]] = PageCheck(
                        item["run_id"],
                        tuple(item["bad_body_seqs"]),
                        item["rederived_sha256"],
                        item["rederived_identity_sha256"],
                        item["stored_sha256"],
                        item["stored_identity_sha256"],
                    )
        except (OSError, ValueError) as exc:
            self.failure = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]  # the worker then exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]
        self.stderr.close()

    def _stderr(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else "no error output"
