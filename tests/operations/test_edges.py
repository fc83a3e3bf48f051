"""Edges an unattended operator hits: bad arguments refused before any request, audit windows,
file modes, paths that are not what they seem."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from bb2sv.cli import app
from emulator import WorkspaceSpec, run_emulator
from tasks.bitbucket.exceptions import ConfigError
from tasks.evidence.store import EvidenceStore
from tasks.period import MAX_WINDOW_DAYS, check_window
from tasks.report.output import write_files
from tasks.workspaces import check_workspaces, folder_name

UUID = "{0F0E0D0C-1111-4222-8333-444455556666}"


def cli(*args: str, env: dict[str, str] | None = None):
    cleared = {name: None for name in os.environ if name.startswith("BITBUCKET_")}
    return CliRunner().invoke(app, list(args), env={**cleared, **(env or {})})


@pytest.fixture(scope="module")
def emu():
    with run_emulator([WorkspaceSpec("acme", members=5, seed=1)], day=date(2026, 11, 20)) as e:
        yield e


@pytest.mark.parametrize("bad", ["..", "../acme", "Acme", "acme/x", "-acme", "{not-a-uuid}", ""])
def test_a_bad_workspace_is_refused_before_any_request(tmp_path, emu, bad):
    before = emu.request_count
    env = {"BITBUCKET_API_URL": emu.base_url, "BITBUCKET_TOKEN": emu.admin_token}
    result = cli("collect", "-w", "acme", "-w", bad, "--db", str(tmp_path / "e.duckdb"), env=env)
    assert result.exit_code == 3, result.output
    assert "Not a Bitbucket workspace" in result.stderr or "No workspace" in result.stderr
    assert emu.request_count == before and not (tmp_path / "e.duckdb").exists()


def test_workspaces_keep_their_order_once_and_uuids_name_folders_without_braces():
    assert check_workspaces(["acme", UUID, "acme", "a.b_c-1"]) == ["acme", UUID, "a.b_c-1"]
    assert folder_name(UUID) == "0f0e0d0c-1111-4222-8333-444455556666"
    assert folder_name("acme") == "acme"
    with pytest.raises(ConfigError, match="lowercase"):
        check_workspaces(["Acme"])
    with pytest.raises(ConfigError, match="at least one"):
        check_workspaces([])


def test_a_missing_relative_policy_is_an_error_wherever_it_runs(tmp_path, emu, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no policy.yaml here
    env = {"BITBUCKET_API_URL": emu.base_url, "BITBUCKET_TOKEN": emu.admin_token}
    result = cli("collect", "-w", "acme", "--policy", "policy.yaml", env=env)
    assert result.exit_code == 3 and "policy.yaml" in result.stderr


@pytest.mark.parametrize("command", [["collect", "-w", "acme"], ["verify"], ["query", "select 1"]])
def test_a_db_that_is_a_directory_is_a_config_error(tmp_path, emu, command):
    env = {"BITBUCKET_API_URL": emu.base_url, "BITBUCKET_TOKEN": emu.admin_token}
    result = cli(*command, "--db", str(tmp_path), env=env)
    assert result.exit_code == 3, result.output
    assert "is a directory" in result.stderr


def test_audit_windows_are_bounded(tmp_path):
    check_window(date(2024, 1, 1), date(2026, 12, 31))  # three years is fine
    with pytest.raises(ConfigError, match="at most"):
        check_window(date(1, 1, 1), date(9999, 12, 31))
    with pytest.raises(ConfigError, match="swap"):
        check_window(date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(ConfigError, match="after today"):  # was a NON-COMPLIANT report of 9999
        check_window(date(9999, 1, 1), date(9999, 12, 31))
    check_window(date(2026, 11, 1), date(2026, 11, 30), today=date(2026, 11, 15))  # so far
    EvidenceStore.open(tmp_path / "e.duckdb").close()
    result = cli(
        "audit-report", "-w", "acme", "--from", "0001-01-01", "--to", "9999-12-31",
        "--db", str(tmp_path / "e.duckdb"),
    )  # fmt: skip
    assert result.exit_code == 3 and f"at most {MAX_WINDOW_DAYS} days" in result.stderr


def test_the_evidence_file_is_created_0600_and_reports_0640(tmp_path):
    old = os.umask(0)  # the modes must not depend on the umask
    try:
        EvidenceStore.open(tmp_path / "e.duckdb").close()
        paths = write_files(tmp_path / "r", {"daily.md": b"# report\n"})
    finally:
        os.umask(old)
    assert oct((tmp_path / "e.duckdb").stat().st_mode & 0o777) == "0o600"
    assert oct(paths["daily.md"].stat().st_mode & 0o777) == "0o640"


def test_a_start_without_an_end_is_an_error():
    from flows.audit_report import audit_window

    with pytest.raises(ConfigError, match="has a start but no end"):
        audit_window(date(2026, 1, 1), None)
    with pytest.raises(ConfigError, match="has a end but no start|has an end"):
        audit_window(None, date(2026, 1, 31))


@pytest.mark.usefixtures("prefect_harness")
def test_the_monthly_window_follows_the_scheduled_start_in_utc(tmp_path):
    """05:00 on 1 March at UTC+14 is still 28 February in UTC: the report covers January."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    from flows.audit_report import bitbucket_2sv_audit_report
    from tasks.bitbucket.auth import BearerToken
    from tasks.bitbucket.config import BitbucketSettings
    from tasks.bitbucket.extract import extract_workspace
    from tasks.policy import DEFAULT_POLICY

    db = tmp_path / "e.duckdb"
    with run_emulator([WorkspaceSpec("acme", members=5, seed=1)]) as emu:
        settings = BitbucketSettings(api_url=emu.base_url, auth=BearerToken(emu.admin_token))
        with EvidenceStore.open(db) as store:
            store.record_run(extract_workspace(settings, "acme"), policy=DEFAULT_POLICY)
    scheduled = datetime.fromisoformat("2026-03-01T05:00:00+14:00")
    parameters = {"workspaces": ["acme"], "db_path": str(db), "reports_dir": str(tmp_path / "r")}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(
            bitbucket_2sv_audit_report,
            parameters=parameters,
            state=Scheduled(scheduled_time=scheduled.astimezone(UTC)),
        )
    state = run_flow(bitbucket_2sv_audit_report, flow_run=flow_run, return_type="state")
    assert state.is_completed(), state.message
    (outcome,) = state.result()
    assert outcome.directory == str(tmp_path / "r" / "2026-01-31" / "acme")
