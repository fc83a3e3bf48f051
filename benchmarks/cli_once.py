"""`bb2sv collect` end to end in a subprocess (no Prefect API configured: the ad-hoc path,
in-process), and what Prefect's own start would cost (an empty flow run).

python benchmarks/cli_once.py 1000    → one JSON line of figures
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import TOKEN, emulator_process

EMPTY_FLOW = "from prefect import flow\nflow(lambda: None, name='empty')()\n"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(members: int) -> dict:
    bb2sv = str(Path(sys.executable).with_name("bb2sv"))
    with emulator_process(members, 0.0) as base_url, tempfile.TemporaryDirectory() as tmp:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
            "PREFECT_HOME": str(Path(tmp) / "prefect"),
            # Prefect gives its temporary server 20 s to start, which a slow hour can pass.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "BITBUCKET_API_URL": base_url,
            "BITBUCKET_TOKEN": TOKEN,
        }
        cold_s = timed([sys.executable, "-c", EMPTY_FLOW], env)  # creates Prefect's database
        prefect_start_s = timed([sys.executable, "-c", EMPTY_FLOW], env)
        # A fresh evidence file each time: the first collection of a new machine.
        collect_runs = [
            timed(
                [
                    bb2sv,
                    "collect",
                    "-w",
                    "bench",
                    "--db",
                    f"{tmp}/e{run}.duckdb",
                    "--reports-dir",
                    f"{tmp}/reports{run}",
                ],
                env,
            )  # fmt: skip
            for run in range(3)
        ]
        return {
            "members": members,
            "prefect_first_start_s": cold_s,
            "prefect_start_s": prefect_start_s,
            "collect_s": statistics.median(collect_runs),
            "collect_runs_s": collect_runs,
        }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
