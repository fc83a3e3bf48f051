"""The task wrappers' own logic, called through `.fn` (Prefect adds nothing to check here)."""

from __future__ import annotations

import pytest

from emulator import Scenario
from tasks.bitbucket.config import settings_from_env
from tasks.steps import (
    ExtractionError,
    TransientExtractionError,
    artifact_key,
    extract_workspace_task,
)
from tasks.vocabulary import ErrorKind, RunStatus


def test_a_complete_extraction_is_returned(bitbucket_env):
    extract = extract_workspace_task.fn(settings_from_env(), "alpha")
    assert extract.status == RunStatus.COMPLETE
    assert extract.request_count == 4  # 120 members: two pages per listing


def test_a_final_fault_is_not_marked_for_retry(bitbucket_env):
    with pytest.raises(ExtractionError) as raised:
        extract_workspace_task.fn(settings_from_env(), "no-such-ws")
    assert not isinstance(raised.value, TransientExtractionError)
    assert raised.value.extract.error_kind == ErrorKind.NOT_FOUND
    assert raised.value.extract.pages, "the refused attempt is carried, to be stored"


def test_a_transient_fault_is_marked_for_retry(bitbucket_env):
    bitbucket_env.set_scenario(Scenario(next_loop=True, fault_workspace="beta"))
    with pytest.raises(TransientExtractionError) as raised:
        extract_workspace_task.fn(settings_from_env(), "beta")
    assert raised.value.extract.error_kind == ErrorKind.ANOMALY
    assert raised.value.extract.status == RunStatus.INCOMPLETE


@pytest.mark.parametrize(
    "workspace, key",
    [("acme", "bb2sv-daily-acme"), ("Acme_Labs.io", "bb2sv-daily-acme-labs-io"),
     ("{0f0e-AB}", "bb2sv-daily-0f0e-ab")],
)  # fmt: skip
def test_artifact_keys_are_what_prefect_accepts(workspace, key):
    assert artifact_key("bb2sv-daily", workspace) == key
