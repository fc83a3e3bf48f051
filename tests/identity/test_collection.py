"""Collections with the organization directory: real Prefect flow runs and the `bb2sv`
command against the emulator over loopback HTTP. The directory is read once and stored with
every workspace's run; a read that is not whole fails the collection loudly; bad
configuration exits 3 before anything is written; the Admin API key never leaks."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from bb2sv.cli import app
from emulator import Scenario, WorkspaceSpec, run_emulator
from flows.collect import collect_bitbucket_2sv
from tasks.evidence.integrity import verify_chain
from tasks.evidence.page_bodies import expand_in_plain_duckdb
from tasks.vocabulary import RunStatus

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEY = "emu-org-admin-key-Q7W3"
WORKSPACES = [
    WorkspaceSpec("alpha", members=120, seed=21, app_user_share=0.05),
    WorkspaceSpec("beta", members=60, seed=22),
]


@pytest.fixture(scope="module")
def emu():
    with run_emulator(WORKSPACES, day=date(2026, 11, 20), admin_api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def env(emu, tmp_path) -> dict[str, str]:
    """Bitbucket and directory settings for the emulator, and an SSO policy file."""
    emu.set_scenario(Scenario())
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "accepted_factors: [bitbucket_2sv, atlassian_2sv, idp_sso]\n"
        "sso:\n"
        f"  email_domains: [{emu.state.org.domain}]\n"
        "  identity_provider: Okta\n"
        "  attestation: Okta sign-on policy MFA every session, SEC-204\n",
        encoding="utf-8",
    )
    return {
        "BITBUCKET_API_URL": emu.base_url,
        "BITBUCKET_TOKEN": emu.admin_token,
        "BITBUCKET_RETRY_DEADLINE": "3",
        "BITBUCKET_BACKOFF_BASE": "0.01",
        "BITBUCKET_BACKOFF_CAP": "0.05",
        "ATLASSIAN_ADMIN_API_URL": emu.admin_api_url,
        "ATLASSIAN_ORG_ID": emu.org_id,
        "ATLASSIAN_ADMIN_API_KEY": KEY,
        "POLICY": str(policy),
    }


def cli(tmp_path: Path, env: dict[str, str], *args: str):
    """`bb2sv collect` in this process; BITBUCKET_*/ATLASSIAN_* come only from `env`."""
    cleared = {n: None for n in os.environ if n.startswith(("BITBUCKET_", "ATLASSIAN_"))}
    return CliRunner().invoke(
        app,
        ["collect", "--db", str(tmp_path / "e.duckdb"), "--reports-dir", str(tmp_path / "r"),
         "--retry-delay", "0", *args],
        env={**cleared, **{k: v for k, v in env.items() if k != "POLICY"}},
    )  # fmt: skip


def test_directory_read_once_and_stored_with_every_run_key_from_a_secret_block(
    tmp_path, emu, env, monkeypatch, caplog
):
    from prefect.blocks.system import Secret

    Secret(value=KEY).save("bb2sv-test-org-key", overwrite=True)
    for name, value in env.items():
        if name not in ("POLICY", "ATLASSIAN_ADMIN_API_KEY"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ATLASSIAN_ADMIN_API_KEY_BLOCK", "bb2sv-test-org-key")
    caplog.set_level("DEBUG")
    served = emu.request_count
    state = collect_bitbucket_2sv(
        workspaces=["alpha", "beta"],
        db_path=str(tmp_path / "e.duckdb"),
        reports_dir=str(tmp_path / "r"),
        policy_path=env["POLICY"],
        retry_delay_seconds=0,
        return_state=True,
    )
    assert state.is_completed(), state.message
    outcomes = state.result()
    assert [o.directory_status for o in outcomes] == [RunStatus.COMPLETE] * 2
    directory_pages = -(-len(emu.expected_directory()) // 100)
    bitbucket_pages = 2 + 2 + 1 + 1  # alpha: 2 members + 2 permissions pages; beta: 1 + 1
    assert emu.request_count - served == directory_pages + bitbucket_pages  # read once

    db = tmp_path / "e.duckdb"
    with duckdb.connect(str(db), read_only=True) as conn:
        expand_in_plain_duckdb(conn)  # page bodies as they arrived, not compressed
        per_run = conn.execute(
            "SELECT r.workspace, count(*) FROM raw_api_pages p JOIN collection_runs r "
            "USING (run_id) WHERE p.listing = 'directory' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert per_run == [("alpha", directory_pages), ("beta", directory_pages)]
        bases = dict(
            conn.execute(
                "SELECT coalesce(mfa_basis, CASE WHEN in_scope THEN 'none' ELSE 'out' END), "
                "count(*) FROM latest_member_state GROUP BY 1"
            ).fetchall()
        )
        assert {"bitbucket_2sv", "atlassian_2sv", "idp_sso", "out"} <= set(bases)
        for table in ("collection_runs", "raw_api_pages", "run_policies",
                      "member_2sv_observations"):  # fmt: skip
            assert KEY not in repr(conn.execute(f"SELECT * FROM {table}").fetchall())
    assert verify_chain(db, workers=0).ok
    users = len(emu.expected_directory())
    assert f"complete, {users} users" in caplog.text  # the capture saw the directory read
    assert "DEBUG" in caplog.text and KEY not in caplog.text
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()


def test_directory_not_read_whole_fails_the_collection_but_keeps_the_runs(tmp_path, emu, env):
    emu.set_scenario(Scenario(fault_listing="directory", next_loop=True))
    result = cli(tmp_path, env, "--workspace", "beta", "--policy", env["POLICY"])
    assert result.exit_code == 5, result.output
    assert "organization directory:" in result.stderr and "next-link loop" in result.stderr
    assert "no member passes on atlassian_2sv or idp_sso" in result.stderr
    with duckdb.connect(str(tmp_path / "e.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT status, directory_status FROM collection_runs").fetchall() == [
            ("complete", "incomplete")
        ]
    (report,) = (tmp_path / "r").rglob("daily-*.md")
    assert "NOT read whole (incomplete)" in report.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("drop", "said"),
    [
        ("ATLASSIAN_ORG_ID", "ATLASSIAN_ORG_ID is missing"),
        ("ATLASSIAN_ADMIN_API_KEY", "ATLASSIAN_ADMIN_API_KEY is missing"),
        ("both", "The policy accepts atlassian_2sv, idp_sso, which only the Atlassian"),
    ],
)
def test_missing_directory_settings_are_config_errors_before_anything_is_written(
    tmp_path, env, drop, said
):
    dropped = [n for n in env if n.startswith("ATLASSIAN_")] if drop == "both" else [drop]
    kept = {k: v for k, v in env.items() if k not in dropped}
    result = cli(tmp_path, kept, "--workspace", "beta", "--policy", env["POLICY"])
    assert result.exit_code == 3, result.output
    assert said in result.stderr and "Traceback" not in result.output
    assert KEY not in result.output
    assert not (tmp_path / "e.duckdb").exists()
