"""The task wrappers' own logic, called through `.fn` (Prefect adds nothing to check here)."""

from __future__ import annotations

import pytest

from emulator import Scenario
from tasks.bitbucket.config import settings_from_env
from tasks.steps import Attempt, artifact_key, extract_workspace_task
from tasks.vocabulary import ErrorKind, RunStatus


def test_a_complete_extraction_is_returned(bitbucket_env):
    extract = extract_workspace_task.fn(settings_from_env(), Attempt("alpha"))
    assert extract.status == RunStatus.COMPLETE
    assert extract.request_count == 4  # 120 members: two pages per listing


def test_a_final_fault_is_returned_with_its_pages(bitbucket_env):
    extract = extract_workspace_task.fn(settings_from_env(), Attempt("no-such-ws"))
    assert extract.error_kind == ErrorKind.NOT_FOUND and not extract.error_kind.retryable
    assert extract.pages, "the refused attempt is carried, to be stored"


def test_a_transient_fault_is_returned_for_the_flow_to_retry(bitbucket_env):
    bitbucket_env.set_scenario(Scenario(next_loop=True, fault_workspace="beta"))
    extract = extract_workspace_task.fn(settings_from_env(), Attempt("beta", number=2))
    assert extract.error_kind == ErrorKind.ANOMALY and extract.error_kind.retryable
    assert extract.status == RunStatus.INCOMPLETE


@pytest.mark.parametrize(
    "workspace, key",
    [("acme", "bb2sv-daily-acme"), ("Acme_Labs.io", "bb2sv-daily-acme-labs-io"),
     ("{0f0e-AB}", "bb2sv-daily-0f0e-ab")],
)  # fmt: skip
def test_artifact_keys_are_what_prefect_accepts(workspace, key):
    assert artifact_key("bb2sv-daily", workspace) == key
