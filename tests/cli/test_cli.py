"""`bb2sv` commands: error paths in-process with typer's CliRunner, plus two smoke tests of
the real console script in a subprocess (collect → verify → query, and a corrupt file).

No Prefect API is configured here, as on a fresh machine: `bb2sv collect` runs in-process.
One test configures the session's test server and sees the collection run as the flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from bb2sv.cli import app
from emulator import WorkspaceSpec

BB2SV = str(Path(sys.executable).with_name("bb2sv"))
SECRET = TOKEN = "emu-cli-admin-token-XYZ987"
EMULATED = [WorkspaceSpec("acme", members=150, seed=5)]

pytestmark = pytest.mark.usefixtures("no_prefect_api")


def emulator_env(emu, token: str = SECRET) -> dict[str, str]:
    return {
        "BITBUCKET_API_URL": emu.base_url,
        "BITBUCKET_TOKEN": token,
        "BITBUCKET_RETRY_DEADLINE": "3",
    }


def cli(*args: str, env: dict[str, str] | None = None):
    """Run `bb2sv ARGS` in this process; BITBUCKET_* come only from `env`."""
    cleared = {name: None for name in os.environ if name.startswith("BITBUCKET_")}
    return CliRunner().invoke(app, list(args), env={**cleared, **(env or {})})


def collect(tmp_path, workspace: str, *options: str, env: dict[str, str] | None = None):
    """`bb2sv collect` of one workspace into tmp_path, with extra options."""
    return cli(
        "collect", "--workspace", workspace, "--db", str(tmp_path / "e.duckdb"),
        "--reports-dir", str(tmp_path / "r"), "--retry-delay", "0", *options, env=env,
    )  # fmt: skip


def assert_clean_exit(result) -> None:
    """The command ended through its own error handling, not an unhandled exception."""
    assert not isinstance(result.exception, Exception), repr(result.exception)


def bb2sv_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real console script, with no Prefect API configured."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BITBUCKET_", "PREFECT_API"))}
    return subprocess.run(
        [BB2SV, *args], env={**base, **env}, capture_output=True, text=True, timeout=180
    )


def test_console_script_collect_verify_query_end_to_end(tmp_path, emu):
    db = str(tmp_path / "e.duckdb")
    env = emulator_env(emu)
    collected = bb2sv_process(
        "collect", "--workspace", "acme", "--db", db, "--reports-dir", str(tmp_path / "r"), env=env
    )
    assert collected.returncode == 0, collected.stderr
    assert "complete" in collected.stdout
    assert SECRET not in collected.stdout + collected.stderr

    verified = cli("verify", "--db", db)
    assert verified.exit_code == 0, verified.output
    assert "1 runs verified" in verified.stdout

    queried = cli(
        "query", "select count(*) as n from member_2sv_observations", "--db", db,
        "--format", "json",
    )  # fmt: skip
    assert queried.exit_code == 0, queried.output
    assert json.loads(queried.stdout) == [{"n": len(emu.expected_members("acme"))}]

    as_csv = cli(
        "query", "select workspace, status from collection_runs", "--db", db, "--format", "csv"
    )
    assert as_csv.stdout.splitlines() == ["workspace,status", "acme,complete"]

    refused = cli("query", "delete from collection_runs", "--db", db)
    assert refused.exit_code == 2, "the SQL is at fault, not the evidence file (7)"
    assert "read-only" in refused.stderr
    assert_clean_exit(refused)
    assert cli("verify", "--db", db).exit_code == 0, "a refused write changed nothing"


def test_console_script_refuses_a_corrupt_file_untouched(tmp_path):
    db = tmp_path / "e.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    before = db.read_bytes()
    result = bb2sv_process("verify", "--db", str(db), env={})
    assert result.returncode == 7
    assert "Traceback" not in result.stderr
    assert "not a DuckDB file" in result.stderr
    assert db.read_bytes() == before


def test_unknown_workspace_is_a_config_error(tmp_path, emu):
    result = collect(tmp_path, "nope-ws", env=emulator_env(emu))
    assert result.exit_code == 3, result.output
    assert "nope-ws" in result.stderr


def test_no_token_is_a_config_error(tmp_path):
    result = cli("collect", "--workspace", "acme", "--db", str(tmp_path / "e.duckdb"))
    assert result.exit_code == 3
    assert "BITBUCKET_TOKEN" in result.stderr
    assert_clean_exit(result)
    assert not (tmp_path / "e.duckdb").exists(), "nothing is written before config is valid"


def test_unreadable_policy_is_a_config_error(tmp_path, emu):
    result = collect(
        tmp_path, "acme", "--policy", str(tmp_path / "missing.yaml"), env=emulator_env(emu)
    )
    assert result.exit_code == 3
    assert "missing.yaml" in result.stderr


def test_bad_policy_names_the_line(tmp_path, emu):
    policy = tmp_path / "policy.yaml"
    policy.write_text("grace_days: 7\nsla_days: soon\n", encoding="utf-8")
    result = collect(tmp_path, "acme", "--policy", str(policy), env=emulator_env(emu))
    assert result.exit_code == 3
    assert "sla_days" in result.stderr and "line 2" in result.stderr


def test_policy_days_out_of_bounds_stop_collect_before_anything_is_stored(tmp_path, emu):
    policy = tmp_path / "policy.yaml"
    policy.write_text("grace_days: 7\nsla_days: 1000000000\n", encoding="utf-8")
    result = collect(tmp_path, "acme", "--policy", str(policy), env=emulator_env(emu))
    assert result.exit_code == 3, result.output
    assert_clean_exit(result)
    message = result.stderr
    assert str(policy) in message and "line 2" in message and "sla_days" in message
    assert "from 0 to 3650 days" in message
    assert not (tmp_path / "e.duckdb").exists(), "nothing is stored with a bad policy"


def test_unwritable_reports_dir_is_a_config_error(tmp_path, emu):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the reports directory should be")
    result = collect(
        tmp_path, "acme", "--reports-dir", str(blocker / "reports"), env=emulator_env(emu)
    )
    assert result.exit_code == 3
    assert "reports directory" in result.stderr


def test_wrong_token_is_an_auth_error_and_never_printed(tmp_path, emu):
    wrong = "definitely-wrong-token-0xDEADBEEF"
    result = collect(tmp_path, "acme", env=emulator_env(emu, token=wrong))
    assert result.exit_code == 4, result.output
    assert wrong not in result.output


def test_verify_names_the_tampered_run(tmp_path, emu):
    from tasks.bitbucket.auth import BearerToken
    from tasks.bitbucket.config import BitbucketSettings
    from tasks.bitbucket.extract import extract_workspace
    from tasks.evidence.store import EvidenceStore
    from tasks.policy import DEFAULT_POLICY

    db = str(tmp_path / "e.duckdb")
    settings = BitbucketSettings(api_url=emu.base_url, auth=BearerToken(SECRET))
    with EvidenceStore.open(db) as store:  # evidence made by the plain functions: no flow needed
        first = store.record_run(extract_workspace(settings, "acme"), policy=DEFAULT_POLICY)
        store.record_run(extract_workspace(settings, "acme"), policy=DEFAULT_POLICY)
    assert cli("verify", "--db", db).exit_code == 0
    with duckdb.connect(db) as conn:
        conn.execute(
            "update member_run_states set two_step_state = 'enabled', "
            "has_2fa_enabled = true where run_id = ? and two_step_state <> 'enabled'",
            [first.run_id],
        )
    result = cli("verify", "--db", db)
    assert result.exit_code == 6
    assert first.run_id in result.stderr


def test_version_is_printed():
    from tasks.version import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bb2sv {__version__}"


def stored_flow_run_ids(db: str) -> list[str | None]:
    with duckdb.connect(db, read_only=True) as conn:
        rows = conn.execute("select prefect_flow_run_id from collection_runs").fetchall()
    return [row[0] for row in rows]


def test_without_a_prefect_api_collect_runs_in_process(tmp_path, emu):
    result = collect(tmp_path, "acme", env=emulator_env(emu))
    assert result.exit_code == 0, result.output
    assert stored_flow_run_ids(str(tmp_path / "e.duckdb")) == [None], "no flow run behind it"
    assert list((tmp_path / "r").rglob("*.html")), "the daily report is written all the same"


def test_with_a_prefect_api_collect_runs_as_the_flow(tmp_path, emu, prefect_harness):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.collect import FLOW_NAME

    with temporary_settings({PREFECT_API_URL: prefect_harness}):
        result = collect(tmp_path, "acme", env=emulator_env(emu))
        assert result.exit_code == 0, result.output
        (flow_run_id,) = stored_flow_run_ids(str(tmp_path / "e.duckdb"))
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(UUID(flow_run_id))
            flow = client.read_flow(flow_run.flow_id)
    assert flow.name == FLOW_NAME and flow_run.state.is_completed()


def test_a_prefect_api_that_does_not_answer_is_a_config_error(tmp_path, emu):
    import socket

    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    dead = f"http://user:hunter2@127.0.0.1:{free_port}/api"
    with temporary_settings({PREFECT_API_URL: dead}):
        result = collect(tmp_path, "acme", env=emulator_env(emu))
    assert result.exit_code == 3, result.output
    assert "does not answer" in result.stderr and f"127.0.0.1:{free_port}/api" in result.stderr
    assert "hunter2" not in result.output
    assert_clean_exit(result)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["collect", "-w", "acme", "--reports-dir", "{file}"], "is a file, not a directory"),
        (["collect", "-w", "acme", "--anchor-log", "{dir}"], "is not a regular file"),
        # an option out of bounds is named as the command line names it
        (["collect", "-w", "acme", "--max-concurrent", "0"],
         "--max-concurrent: Input should be greater than or equal to 1 (got 0)"),
        (
            ["audit-report", "-w", "acme", "--from", "2026-01-01", "--to", "2026-01-31",
             "--reports-dir", "{file}"],
            "is a file, not a directory",
        ),
        (["demo", "--days", "100000000", "--dir", "{dir}"], "--days must be 1 to 1098"),
        (["demo", "--dir", "{file}"], "is a file; pass a directory"),
        (["emulator", "serve", "--port", "99999"], "--port must be 1 to 65535"),
        (["emulator", "serve", "--port", "{taken}"], "(Address already in use); pick another"),
    ],
)  # fmt: skip
def test_odd_arguments_are_configuration_errors_not_tracebacks(tmp_path, emu, args, said):
    """Each of these ended in an unexpected error (a traceback, or a bare errno) before."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    taken = httpx.URL(emu.base_url).port  # the emulator listens there
    filled = [arg.format(file=a_file, dir=tmp_path, taken=taken) for arg in args]
    if args[0] in ("collect", "audit-report"):
        filled += ["--db", str(tmp_path / "e.duckdb")]
    result = cli(*filled, env=emulator_env(emu))
    assert result.exit_code == 3, result.output
    assert said in result.stderr
    assert_clean_exit(result)
