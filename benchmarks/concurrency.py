"""Concurrency across workspaces: the collection flow for 1 and for N workspaces.

    python benchmarks/concurrency.py 10 1000 0.05    → one JSON line of figures

The client's hourly request budget and the emulator's are the same, so a 429 would mean
the client failed to pace itself.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

BUDGET = 1000


def main(workspaces: int, members: int, latency_s: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bb2sv-bench-"))
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    # Prefect gives its temporary server 20 s to start, which a slow hour can pass.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from common import ROOT  # noqa: F401 (puts the repo on sys.path)

    from emulator import Scenario, WorkspaceSpec, run_emulator
    from flows.collect import collect_bitbucket_2sv

    specs = [WorkspaceSpec(f"ws-{i:02d}", members=members, seed=i) for i in range(workspaces)]
    with run_emulator(specs, scenario=Scenario(hourly_budget=BUDGET)) as emu:
        os.environ.update(
            BITBUCKET_API_URL=emu.base_url,
            BITBUCKET_TOKEN=emu.admin_token,
            BITBUCKET_MAX_REQUESTS_PER_HOUR=str(BUDGET),
        )

        def run(slugs: list[str], name: str) -> float:
            start = time.perf_counter()
            state = collect_bitbucket_2sv(
                workspaces=slugs,
                db_path=str(tmp / f"{name}.duckdb"),
                reports_dir=str(tmp / "reports"),
                max_concurrent_workspaces=workspaces,
                return_state=True,
            )
            assert state.is_completed(), state.message
            return time.perf_counter() - start

        run([specs[0].slug], "warmup")  # Prefect's server and database start here, untimed
        emu.set_scenario(Scenario(latency_s=latency_s, hourly_budget=BUDGET))
        one_s = run([specs[0].slug], "one")
        before = emu.request_count
        many_s = run([s.slug for s in specs], "many")
        requests = emu.request_count - before
    import duckdb

    with duckdb.connect(str(tmp / "many.duckdb"), read_only=True) as conn:
        rate_limited = conn.execute(
            "select count(*) from raw_api_pages where status_code = 429"
        ).fetchone()[0]
    return {
        "workspaces": workspaces,
        "members": members,
        "one_s": one_s,
        "many_s": many_s,
        "requests": requests,
        "budget": BUDGET,
        "rate_limited": rate_limited,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))))
