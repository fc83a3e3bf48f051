"""The deploy path, as an operator runs it against the session's real Prefect server:
`bb2sv prefect-setup` (twice: nothing changes), `prefect deploy --all` from the repository
root with no extra environment, and a bare process worker (no BITBUCKET_* variables, no
BB2SV_HOME) running the daily deployment with its token from a Secret block."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from emulator import WorkspaceSpec, run_emulator

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
TOKEN = "emu-deploy-test-token-31337"
AUTOMATIONS = {
    "bb2sv-daily-evidence-missing", "bb2sv-daily-evidence-still-missing", "bb2sv-run-failed",
    "bb2sv-critical-violation",
}  # fmt: skip


def bare_env(home: Path) -> dict[str, str]:
    """The environment of a shell that only knows where the Prefect API is."""
    from prefect.settings import PREFECT_API_URL

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BITBUCKET_", "BB2SV_"))
    }
    env.update(
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PREFECT_HOME=str(home),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    return env


@pytest.fixture(scope="module")
def first_setup():
    from bb2sv.prefect_setup import prefect_setup

    os.environ["BITBUCKET_TOKEN"] = TOKEN  # the credential whose budget it sets up
    try:
        yield prefect_setup()
    finally:
        del os.environ["BITBUCKET_TOKEN"]


def test_prefect_setup_creates_everything_once(first_setup, monkeypatch):
    from prefect.client.orchestration import get_client

    from bb2sv.prefect_setup import prefect_setup
    from tasks.bitbucket.config import settings_from_env
    from tasks.shared_budget import budget_limit_name, read_budget_limit

    monkeypatch.setenv("BITBUCKET_TOKEN", TOKEN)
    name = budget_limit_name(settings_from_env())
    assert ("rate limit", name, "created") in [(r.kind, r.name, r.change) for r in first_setup]
    assert TOKEN not in name
    again = prefect_setup()
    assert [(r.kind, r.name) for r in again] == [(r.kind, r.name) for r in first_setup]
    assert {r.change for r in again} == {"unchanged"}, again
    from typer.testing import CliRunner

    from bb2sv.cli import app

    printed = CliRunner().invoke(app, ["prefect-setup"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.count("unchanged") == len(again) and "--notify" in printed.stderr
    assert read_budget_limit(name) == (1000, pytest.approx(1000 / 3600))
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("bb2sv-process").type == "process"
        for automation in AUTOMATIONS:
            (found,) = client.read_automations_by_name(automation)
            assert [action.type for action in found.actions] == ["do-nothing"]


def test_a_bare_process_worker_runs_the_daily_deployment(tmp_path, first_setup):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.deployments import run_deployment

    data = tmp_path / "data"
    with run_emulator([WorkspaceSpec("acme", members=150, seed=5)], admin_token=TOKEN) as emu:
        Secret(value=TOKEN).save("bitbucket-token", overwrite=True)
        deployed = subprocess.run(
            [PREFECT, "deploy", "--all"], cwd=ROOT, env=bare_env(tmp_path / "home"),
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        flow_run = run_deployment(
            "collect-bitbucket-2sv/bitbucket-2sv-daily",
            parameters={"workspaces": ["acme"]},
            job_variables={"env": {"BITBUCKET_API_URL": emu.base_url, "BB2SV_DATA_DIR": str(data)}},
            timeout=0,
        )
        worker = subprocess.run(
            [PREFECT, "worker", "start", "--pool", "bb2sv-process", "--run-once"],
            cwd=tmp_path, env=bare_env(tmp_path / "home"), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
        deployment = client.read_deployment_by_name("collect-bitbucket-2sv/bitbucket-2sv-daily")
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    assert state.is_completed(), worker.stdout[-4000:] + worker.stderr[-4000:]
    assert TOKEN not in worker.stdout + worker.stderr + deployed.stdout
    assert deployment.entrypoint == "flows.collect.collect_bitbucket_2sv"
    assert deployment.job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "bb2sv"
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert any(log.name.startswith("bb2sv.") for log in logs), "client logs reach the UI"

    assert oct(data.stat().st_mode & 0o777) == "0o700"
    with duckdb.connect(str(data / "evidence.duckdb"), read_only=True) as conn:
        runs = conn.execute("select workspace, status from collection_runs").fetchall()
    assert runs == [("acme", "complete")]
    today = datetime.now(UTC).date().isoformat()
    assert list((data / "reports" / today / "acme").glob("*.manifest.json"))


def test_notify_points_the_alerts_at_the_named_block_and_an_unknown_one_is_a_config_error(
    first_setup,
):
    from prefect.blocks.notifications import SlackWebhook
    from prefect.client.orchestration import get_client

    from bb2sv.prefect_setup import prefect_setup
    from tasks.bitbucket.exceptions import ConfigError

    block_id = SlackWebhook(url="https://hooks.slack.com/services/T0/B0/test").save(
        "bb2sv-test-alerts", overwrite=True
    )
    try:
        changed = prefect_setup(notify="bb2sv-test-alerts")
        assert {r.change for r in changed if r.kind == "automation"} == {"updated"}
        with get_client(sync_client=True) as client:
            for automation in AUTOMATIONS:
                (found,) = client.read_automations_by_name(automation)
                sends = [(a.type, a.block_document_id) for a in found.actions]
                assert sends == [("send-notification", block_id)], automation
        with pytest.raises(ConfigError, match="no Prefect block named 'no-such-block'"):
            prefect_setup(notify="no-such-block")
    finally:
        prefect_setup()  # the alerts only record again, as the other tests expect


def test_the_alerts_follow_what_they_watch():
    """A missed day is counted from the last completed run (after = expect: each completed
    run restarts the window; fixed back-to-back windows reported it up to two windows
    late), and a failed run is matched by its flow's name, which `bb2sv collect` with a
    Prefect API carries too (it has no deployment tag)."""
    import yaml

    from bb2sv.prefect_setup import AUTOMATIONS as FOLDER
    from flows import audit_report, collect

    def trigger(name: str) -> dict:
        return yaml.safe_load((FOLDER / f"{name}.yaml").read_text(encoding="utf-8"))["trigger"]

    missing = trigger("daily-evidence-missing")
    assert missing["posture"] == "Proactive"
    assert missing["after"] == missing["expect"] == ["prefect.flow-run.Completed"]
    assert "after" not in trigger("daily-evidence-still-missing")
    failed = trigger("run-failed")["match_related"]
    assert failed["prefect.resource.role"] == "flow"
    assert set(failed["prefect.resource.name"]) == {collect.FLOW_NAME, audit_report.FLOW_NAME}
