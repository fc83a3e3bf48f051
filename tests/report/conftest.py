"""Fixtures for report tests: real evidence files built with the real EvidenceStore from
`emulator.offline` pages (the JSON shapes the client receives).

    record(store, "acme", date(2026, 11, 1), [member("alice", True), member("bob", False)])
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from emulator.offline import ORIGIN, make_extract, member
from tasks.evidence.keys import RunSigner
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, Policy
from tasks.vocabulary import ErrorKind, RunStatus


def at(day: date, hour: int = 6, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def record(
    store: EvidenceStore,
    workspace: str,
    day: date,
    members: list[dict],
    *,
    policy: Policy = DEFAULT_POLICY,
    hour: int = 6,
    minute: int = 0,
    status: RunStatus = RunStatus.COMPLETE,
    emulated: bool = False,
    signer: RunSigner | None = None,
    origin: str = ORIGIN,
    tool_version: str | None = None,
) -> str:
    """Record one run of `members` at `day` hour:minute and return its run_id. A run that is
    not complete stopped after its first page (HTTP 503 on page 2). `tool_version`: the bb2sv
    said to store it (default: this one)."""
    stopped = {}
    if status != RunStatus.COMPLETE:
        stopped = {"pages_read": 1, "error": "HTTP 503 on page 2 after 5 attempts",
                   "error_kind": ErrorKind.TRANSIENT}  # fmt: skip
    extract = make_extract(workspace, members, at=at(day, hour, minute), status=status,
                           emulated=emulated, origin=origin, **stopped)  # fmt: skip
    stored_by = {} if tool_version is None else {"tool_version": tool_version}
    return store.record_run(extract, policy=policy, signer=signer, **stored_by).run_id


@pytest.fixture(scope="session")
def build():
    """`emulator.offline.member` and `record`, for test modules (pytest's importlib mode
    cannot import conftest)."""
    return SimpleNamespace(member=member, record=record)
