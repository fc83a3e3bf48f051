"""`bb2sv` through its real console-script entry point, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from emulator import WorkspaceSpec, run_emulator

BB2SV = str(Path(sys.executable).with_name("bb2sv"))
SECRET = "emu-cli-admin-token-XYZ987"


@pytest.fixture(scope="module")
def emu():
    with run_emulator(
        [WorkspaceSpec("acme", members=150, seed=5)], day=date(2026, 11, 20), admin_token=SECRET
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module", autouse=True)
def shared_prefect_api(prefect_harness):
    """Subprocesses use the session's test Prefect server instead of each starting their own."""
    from prefect.settings import PREFECT_API_URL

    os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
    yield
    os.environ.pop("PREFECT_API_URL", None)


def bb2sv(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BITBUCKET_")}
    return subprocess.run(
        [BB2SV, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def emulator_env(emu, token: str = SECRET) -> dict[str, str]:
    return {
        "BITBUCKET_API_URL": emu.base_url,
        "BITBUCKET_TOKEN": token,
        "BITBUCKET_RETRY_DEADLINE": "3",
    }


def collect(tmp_path, workspace: str, *options: str, env: dict[str, str] | None = None):
    """`bb2sv collect` of one workspace into tmp_path, with extra options."""
    return bb2sv(
        "collect", "--workspace", workspace, "--db", str(tmp_path / "e.duckdb"),
        "--reports-dir", str(tmp_path / "r"), *options, env=env,
    )  # fmt: skip


def test_collect_verify_query_end_to_end(tmp_path, emu):
    db = str(tmp_path / "e.duckdb")
    collected = bb2sv(
        "collect",
        "--workspace",
        "acme",
        "--db",
        db,
        "--reports-dir",
        str(tmp_path / "r"),
        env=emulator_env(emu),
    )
    assert collected.returncode == 0, collected.stderr
    assert "complete" in collected.stdout
    assert SECRET not in collected.stdout + collected.stderr

    verified = bb2sv("verify", "--db", db)
    assert verified.returncode == 0, verified.stderr
    assert "1 runs verified" in verified.stdout

    queried = bb2sv(
        "query",
        "select count(*) as n from member_2sv_observations",
        "--db",
        db,
        "--format",
        "json",
    )
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout) == [{"n": len(emu.expected_members("acme"))}]

    as_csv = bb2sv(
        "query", "select workspace, status from collection_runs", "--db", db, "--format", "csv"
    )
    assert as_csv.stdout.splitlines() == ["workspace,status", "acme,complete"]

    refused = bb2sv("query", "delete from collection_runs", "--db", db)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert bb2sv("verify", "--db", db).returncode == 0, "a refused write changed nothing"


def test_unknown_workspace_is_a_config_error(tmp_path, emu):
    result = collect(tmp_path, "nope-ws", env=emulator_env(emu))
    assert result.returncode == 3, result.stderr
    assert "nope-ws" in result.stderr


def test_no_token_is_a_config_error(tmp_path):
    result = bb2sv("collect", "--workspace", "acme", "--db", str(tmp_path / "e.duckdb"))
    assert result.returncode == 3
    assert "BITBUCKET_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "e.duckdb").exists(), "nothing is written before config is valid"


def test_unreadable_policy_is_a_config_error(tmp_path, emu):
    result = collect(
        tmp_path, "acme", "--policy", str(tmp_path / "missing.yaml"), env=emulator_env(emu)
    )
    assert result.returncode == 3
    assert "missing.yaml" in result.stderr


def test_bad_policy_names_the_line(tmp_path, emu):
    policy = tmp_path / "policy.yaml"
    policy.write_text("grace_days: 7\nsla_days: soon\n", encoding="utf-8")
    result = collect(tmp_path, "acme", "--policy", str(policy), env=emulator_env(emu))
    assert result.returncode == 3
    assert "sla_days" in result.stderr and "line 2" in result.stderr


def test_unwritable_reports_dir_is_a_config_error(tmp_path, emu):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the reports directory should be")
    result = collect(
        tmp_path, "acme", "--reports-dir", str(blocker / "reports"), env=emulator_env(emu)
    )
    assert result.returncode == 3
    assert "reports directory" in result.stderr


def test_wrong_token_is_an_auth_error_and_never_printed(tmp_path, emu):
    wrong = "definitely-wrong-token-0xDEADBEEF"
    result = collect(tmp_path, "acme", env=emulator_env(emu, token=wrong))
    assert result.returncode == 4, result.stderr
    assert wrong not in result.stdout + result.stderr


def test_verify_names_the_tampered_run(tmp_path, emu):
    import duckdb

    db = str(tmp_path / "e.duckdb")
    env = emulator_env(emu)
    for _ in range(2):
        assert (
            bb2sv(
                "collect", "-w", "acme", "--db", db, "--reports-dir", str(tmp_path / "r"), env=env
            ).returncode
            == 0
        )
    with duckdb.connect(db) as conn:
        first = conn.execute("select run_id from collection_runs order by seq limit 1").fetchone()[
            0
        ]
        conn.execute(
            "update member_2sv_observations set two_step_state = 'enabled', "
            "has_2fa_enabled = true where run_id = ? and two_step_state <> 'enabled'",
            [first],
        )
    result = bb2sv("verify", "--db", db)
    assert result.returncode == 6
    assert first in result.stderr


def test_corrupt_evidence_file_is_refused_untouched(tmp_path):
    db = tmp_path / "e.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    before = db.read_bytes()
    result = bb2sv("verify", "--db", str(db))
    assert result.returncode == 7
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == before
