"""bb2sv beside a general-purpose loader: the same two listings into DuckDB, whole processes.

python benchmarks/peer.py [MEMBERS [LATENCY]]    → one JSON line of figures (20,000, 0.02)

One emulator process serves both. Each side is timed as a whole process, interpreter start
and imports included:

- `bb2sv collect` of the workspace into a fresh evidence file, as a user runs it (the
  environment names the API and the token; no Prefect API is configured, so it takes the
  ad-hoc path, whatever that path costs at the time);
- benchmarks/peer_dlt.py: dlt's REST API source, the members listing (with
  `fields=+values.user.has_2fa_enabled`) and the permissions listing, `pagelen=100`,
  following `next`, into a fresh DuckDB file, in its own venv (`make bench-peer`).

Then the rows each loaded are counted, and the member populations compared (SHA-256 of the
sorted account_ids): the two must have read the same people.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from common import ROOT, TOKEN, emulator_process

PEER_PYTHON = ROOT / "benchmarks" / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "peer_dlt.py"
WORKSPACE = "bench"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds of the whole process, its stderr)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return seconds, result.stderr


def dlt_steps(stderr: str) -> dict[str, float]:
    """peer_dlt.py's 'dlt <step>: <seconds> s' lines (extract, normalize, load, run)."""
    steps = {}
    for line in stderr.splitlines():
        if line.startswith("dlt ") and line.endswith(" s") and ": " in line:
            name, seconds = line.removeprefix("dlt ").removesuffix(" s").split(": ", 1)
            steps[name] = float(seconds)
    return steps


def ids_sha256(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def bb2sv_rows(db: Path) -> dict:
    """Observations (one per member, its permission joined) and pages per listing."""
    with duckdb.connect(str(db), read_only=True) as conn:
        query = "SELECT account_id FROM member_2sv_observations"
        ids = [row[0] for row in conn.execute(query).fetchall()]
        with_permission = conn.execute(
            "SELECT count(*) FROM member_2sv_observations WHERE permission IS NOT NULL"
        ).fetchone()[0]
        pages = dict(
            conn.execute("SELECT listing, count(*) FROM raw_api_pages GROUP BY listing").fetchall()
        )
        status = conn.execute("SELECT status FROM collection_runs").fetchall()
    return {
        "members": len(ids),
        "with_permission": with_permission,
        "members_ids_sha256": ids_sha256(ids),
        "pages": pages,
        "status": [row[0] for row in status],
    }


def main(members: int, latency_s: float) -> dict:
    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} is missing: run `make bench-peer` (it creates it)")
    bb2sv = str(Path(sys.executable).with_name("bb2sv"))
    with (
        emulator_process(members, latency_s, WORKSPACE) as base_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PREFECT_API_", "BITBUCKET_", "ATLASSIAN_", "BB2SV_"))
        }
        env |= {
            "PREFECT_HOME": f"{tmp}/prefect",
            "BITBUCKET_API_URL": base_url,
            "BITBUCKET_TOKEN": TOKEN,
        }
        evidence = Path(tmp) / "evidence.duckdb"
        collect = [bb2sv, "collect", "-w", WORKSPACE, "--db", str(evidence)]
        collect += ["--reports-dir", f"{tmp}/reports"]
        bb2sv_s, _ = timed(collect, env)
        print(f"bb2sv collect: {bb2sv_s:.2f} s", file=sys.stderr, flush=True)
        peer_db = Path(tmp) / "peer.duckdb"
        load = [str(PEER_PYTHON), str(PEER_SCRIPT), "load", base_url, TOKEN, WORKSPACE]
        dlt_s, dlt_err = timed([*load, str(peer_db), f"{tmp}/dlt"], env)
        print(f"dlt: {dlt_s:.2f} s", file=sys.stderr, flush=True)
        counted = subprocess.run(
            [str(PEER_PYTHON), str(PEER_SCRIPT), "count", str(peer_db)],
            capture_output=True,
            text=True,
            check=True,
        )
        peer = json.loads(counted.stdout.strip().splitlines()[-1])
        ours = bb2sv_rows(evidence)
    return {
        "members": members,
        "latency_s": latency_s,
        "bb2sv_s": bb2sv_s,
        "dlt_s": dlt_s,
        "ratio": dlt_s / bb2sv_s,
        "bb2sv": ours,
        "dlt": peer,
        "dlt_steps_s": dlt_steps(dlt_err),
        "same_members": ours["members_ids_sha256"] == peer["members_ids_sha256"],
    }


if __name__ == "__main__":
    arguments = sys.argv[1:]
    count = int(arguments[0]) if arguments else 20_000
    latency = float(arguments[1]) if len(arguments) > 1 else 0.02
    print(json.dumps(main(count, latency)))
