"""Fixtures for report tests: real evidence files built with the real EvidenceStore from
synthetic Bitbucket API pages (the same JSON shapes the client receives).

    store = evidence(tmp_path)
    record(store, "acme", date(2026, 11, 1), [member("alice", True), member("bob", False)])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from tasks.bitbucket.models import ListingResult, RawPage, WorkspaceExtract
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, Policy

API = "https://api.bitbucket.org/2.0"


@dataclass(frozen=True)
class Member:
    nickname: str
    has_2fa: bool | None
    permission: str = "member"
    display_name: str | None = None
    account_id: str | None = None

    @property
    def key(self) -> str:
        return self.account_id or f"557058:{self.nickname}"


def member(nickname: str, has_2fa: bool | None, permission: str = "member", **extra) -> Member:
    return Member(nickname, has_2fa, permission, **extra)


def _user(m: Member) -> dict:
    user = {
        "type": "user",
        "uuid": "{" + m.key + "}",
        "account_id": m.key,
        "nickname": m.nickname,
        "display_name": m.display_name if m.display_name is not None else m.nickname.title(),
    }
    if m.has_2fa is not None:
        user["has_2fa_enabled"] = m.has_2fa
    return user


def make_extract(
    workspace: str,
    when: datetime,
    members: list[Member],
    *,
    status: str = "complete",
    emulated: bool = False,
    page_size: int = 100,
) -> WorkspaceExtract:
    """Members and permissions listings paged like the real API, then the run's outcome."""
    pages: list[RawPage] = []
    tick = 0

    def listing(name: str, value_of) -> None:
        nonlocal tick
        chunks = [members[i : i + page_size] for i in range(0, len(members), page_size)] or [[]]
        base = f"{API}/workspaces/{workspace}/{name}?pagelen={page_size}"
        for number, chunk in enumerate(chunks, start=1):
            body = {"pagelen": page_size, "size": len(members), "page": number,
                    "values": [value_of(m) for m in chunk]}  # fmt: skip
            if number < len(chunks):
                body["next"] = f"{base}&page={number + 1}"
            tick += 1
            pages.append(
                RawPage(
                    name,
                    f"{base}&page={number}",
                    200,
                    when + timedelta(seconds=tick),
                    orjson.dumps(body),
                )  # fmt: skip
            )

    listing("members", lambda m: {"type": "workspace_membership", "user": _user(m)})
    listing("permissions", lambda m: {"permission": m.permission, "user": _user(m)})
    if status != "complete":
        pages = pages[: max(1, len(pages) // 4)]
    return WorkspaceExtract(
        workspace=workspace,
        source=API,
        started_at=when,
        finished_at=when + timedelta(seconds=tick + 1),
        status=status,
        pages=pages,
        listings=[
            ListingResult("members", status == "complete", None, len(members), len(members)),
            ListingResult("permissions", status == "complete", None, len(members), len(members)),
        ],
        request_count=len(pages),
        error=None if status == "complete" else "HTTP 503 on page 2 after 5 attempts",
        error_kind=None if status == "complete" else "transient",
        emulated=emulated,
    )


def at(day: date, hour: int = 6, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def record(
    store: EvidenceStore,
    workspace: str,
    day: date,
    members: list[Member],
    *,
    policy: Policy = DEFAULT_POLICY,
    hour: int = 6,
    minute: int = 0,
    status: str = "complete",
    emulated: bool = False,
) -> str:
    extract = make_extract(workspace, at(day, hour, minute), members, status=status,
                           emulated=emulated)  # fmt: skip
    return store.record_run(extract, policy=policy).run_id


@pytest.fixture
def store(tmp_path: Path):
    with EvidenceStore.open(tmp_path / "evidence.duckdb") as opened:
        yield opened


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.fixture(scope="session")
def build():
    """The builders above, for test modules (pytest's importlib mode cannot import conftest)."""
    return SimpleNamespace(member=member, record=record, make_extract=make_extract, at=at)
