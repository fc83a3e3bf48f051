"""The peer: dlt's REST API source loading the same two listings into DuckDB.

Runs in its own venv (benchmarks/.venv-peer, `make bench-peer`), never with bb2sv's packages:

    .venv-peer/bin/python benchmarks/peer_dlt.py load API_URL TOKEN WORKSPACE DB WORKDIR
    .venv-peer/bin/python benchmarks/peer_dlt.py count DB   → one JSON line: rows per table

`load` is what a dlt user would write for these listings: the members listing with
`fields=+values.user.has_2fa_enabled` and the permissions listing, `pagelen=100`, Bearer
auth, following each page's `next` link, dlt's defaults otherwise. Timed from outside, as a
whole process (interpreter start and imports included).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

DATASET = "bitbucket"


def load(api_url: str, token: str, workspace: str, db: str, workdir: str) -> None:
    # Before dlt is imported: no telemetry (the network reaches only PyPI here), no state in ~.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = workdir
    import dlt
    from dlt.sources.rest_api import rest_api_source

    listing = f"workspaces/{workspace}"
    source = rest_api_source(
        {
            "client": {
                "base_url": api_url.rstrip("/") + "/",
                "auth": {"type": "bearer", "token": token},
                "paginator": {"type": "json_link", "next_url_path": "next"},
            },
            "resource_defaults": {
                "write_disposition": "replace",
                "endpoint": {"data_selector": "values", "params": {"pagelen": 100}},
            },
            "resources": [
                {
                    "name": "members",
                    "endpoint": {
                        "path": f"{listing}/members",
                        "params": {"pagelen": 100, "fields": "+values.user.has_2fa_enabled"},
                    },
                },
                {"name": "permissions", "endpoint": {"path": f"{listing}/permissions"}},
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bb2sv_peer",
        destination=dlt.destinations.duckdb(db),
        dataset_name=DATASET,
        pipelines_dir=os.path.join(workdir, "pipelines"),
    )
    pipeline.run(source)
    for step in pipeline.last_trace.steps:  # where dlt's time went, for whoever reads stderr
        seconds = (step.finished_at - step.started_at).total_seconds()
        print(f"dlt {step.step}: {seconds:.2f} s", file=sys.stderr)


def count(db: str) -> None:
    import duckdb

    with duckdb.connect(db, read_only=True) as conn:
        figures: dict[str, object] = {}
        for table in ("members", "permissions"):
            query = f"SELECT user__account_id FROM {DATASET}.{table}"  # noqa: S608 (fixed names)
            ids = sorted(row[0] for row in conn.execute(query).fetchall())
            figures[table] = len(ids)
            figures[f"{table}_ids_sha256"] = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        print(json.dumps(figures))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"load": load, "count": count}[command](*args)
