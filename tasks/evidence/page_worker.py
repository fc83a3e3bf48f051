"""A verify worker process: checks the chunks of runs it is sent, one JSON line each way.

Started by `page_pool.checking_pages` as ``python -m tasks.evidence.page_worker FILE``.

    stdin   {"runs": [{"run_id": …, "workspace": …, "lo": 0, "hi": 199, "pages": 200,
                       "tool_version": "0.2.0"}, …],
             "exact": true}
    stdout  {"checks": [{"run_id": …, "bad_body_seqs": [], "rederived_sha256": …,
                         "rederived_identity_sha256": …, "stored_sha256": …,
                         "stored_identity_sha256": …}, …]}
            or {"error": "…"}
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from tasks.evidence.connection import DEFAULT_LOCK_TIMEOUT_S
from tasks.evidence.page_checks import BodyCache, Chunk, RunPages, check_chunk
from tasks.evidence.sandbox import open_sandboxed
from tasks.heap import freeze_imported_objects


def serve(path: Path) -> None:
    freeze_imported_objects()  # as the parent does (tasks/heap.py)
    # One DuckDB thread per worker: the workers already use every CPU between them.
    conn = open_sandboxed(path, lock_timeout_s=DEFAULT_LOCK_TIMEOUT_S, threads=1)
    cache = BodyCache()  # chunks come in chain order: the next run repeats most bodies
    for line in sys.stdin.buffer:
        try:
            request = orjson.loads(line)
            chunk = Chunk(tuple(RunPages(**run) for run in request["runs"]), request["exact"])
            checks = [
                {
                    "run_id": check.run_id,
                    "bad_body_seqs": list(check.bad_body_seqs),
                    "rederived_sha256": check.rederived_sha256,
                    "rederived_identity_sha256": check.rederived_identity_sha256,
                    "stored_sha256": check.stored_sha256,
                    "stored_identity_sha256": check.stored_identity_sha256,
                }
                for check in check_chunk(conn, chunk, cache)
            ]
            reply: dict = {"checks": checks}
        except Exception as exc:  # reported to the parent, which raises it
            reply = {"error": f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"}
        sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
        sys.stdout.buffer.flush()
    conn.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
