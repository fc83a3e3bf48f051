from __future__ import annotations

from datetime import date

import pytest

from emulator import WorkspaceSpec, run_emulator

WORKSPACES = [
    WorkspaceSpec("alpha", members=120, seed=11),
    WorkspaceSpec("beta", members=230, seed=12),
    WorkspaceSpec("gamma", members=60, seed=13),  # one page per listing
]


@pytest.fixture(scope="module")
def emu():
    with run_emulator(WORKSPACES, day=date(2026, 11, 20)) as emulator:
        yield emulator


def _point_at(emu, env: pytest.MonkeyPatch) -> None:
    """The client's environment pointed at the emulator (its default scenario), with
    retries short enough for tests."""
    from emulator import Scenario

    emu.set_scenario(Scenario())
    env.setenv("BITBUCKET_API_URL", emu.base_url)
    env.setenv("BITBUCKET_TOKEN", emu.admin_token)
    env.setenv("BITBUCKET_RETRY_DEADLINE", "3")
    env.setenv("BITBUCKET_BACKOFF_BASE", "0.01")
    env.setenv("BITBUCKET_BACKOFF_CAP", "0.05")


@pytest.fixture
def bitbucket_env(emu, monkeypatch):
    """Point the client at the emulator, with retries short enough for tests."""
    _point_at(emu, monkeypatch)
    return emu


@pytest.fixture(scope="session")
def point_at_emulator():
    """point_at_emulator(emu, env): `bitbucket_env`'s settings on a MonkeyPatch of your
    own, for a module-scoped fixture."""
    return _point_at


@pytest.fixture
def collect_flow(tmp_path):
    """collect_flow(workspaces, **parameters): the collection flow's final state, with the
    evidence file and reports in tmp_path and no wait between attempts unless asked."""
    from flows.collect import collect_bitbucket_2sv

    def run(workspaces: list[str], flow_run_name: str | None = None, **parameters):
        parameters.setdefault("retry_delay_seconds", 0)
        paths = {"db_path": str(tmp_path / "evidence.duckdb"), "reports_dir": str(tmp_path / "r")}
        flow = collect_bitbucket_2sv.with_options(flow_run_name=flow_run_name)
        return flow(workspaces, **paths, **parameters, return_state=True)

    return run


@pytest.fixture
def collect_local(tmp_path):
    """collect_local(workspaces, **parameters): the same collection run in-process
    (flows/local.py), for behaviour that lives in run_collection (attempts, budgets, limits,
    the spool), where a Prefect flow run adds only its own cost. Paths as `collect_flow`."""
    from flows.collection import CollectionOptions
    from flows.local import collect_locally

    def run(workspaces: list[str], **parameters):
        parameters.setdefault("retry_delay_seconds", 0)
        paths = {"db_path": str(tmp_path / "evidence.duckdb"), "reports_dir": str(tmp_path / "r")}
        options = CollectionOptions.checked(workspaces=workspaces, **paths, **parameters)
        return collect_locally(options, options.preflight())

    return run


@pytest.fixture
def artifact_of():
    """artifact_of(state, key): the artifact `key` made by the flow run of `state`."""
    return _artifact_of


def _artifact_of(state, key: str):
    """The artifact `key` made by the flow run of `state`. Not `Artifact.get(key)`: that is
    the key's newest, and other tests' runs of the same workspace share the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    only_this_run = ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
    )
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=only_this_run)
    return artifact
