"""Synthetic Bitbucket pages for the evidence-store tests (no emulator needed).

    members = synthetic_members(250)                       # mix of enabled/disabled/unknown
    extract = make_extract("acme", members, day=date(2026, 3, 1))
    with EvidenceStore.open(tmp_path / "e.duckdb") as store:
        store.record_run(extract, policy=DEFAULT_POLICY)

Pages follow Bitbucket's paginated_workspace_memberships envelope: `values`, `pagelen`,
`size`, `page`, an opaque `next` on every page but the last; members pages carry
`user.has_2fa_enabled` (true, false, null, or absent), permissions pages carry `permission`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import orjson
import pytest

from tasks.bitbucket.models import ListingResult, RawPage, WorkspaceExtract

API = "https://api.bitbucket.org/2.0"
ABSENT = object()  # has_2fa_enabled missing from the user object (non-admin caller)


def member(
    number: int, *, has_2fa: Any = True, permission: str = "member", account_id: Any = ...
) -> dict[str, Any]:
    """One member; account_id=None makes a bot/app member known only by uuid."""
    return {
        "account_id": f"557058:{number:08d}-aaaa-4bbb-8ccc-{number:012d}"
        if account_id is ...
        else account_id,
        "uuid": f"{{{number:08d}-1111-4222-8333-{number:012d}}}",
        "nickname": f"user{number}",
        "display_name": f"User Number {number}",
        "has_2fa": has_2fa,
        "permission": permission,
    }


def synthetic_members(count: int, *, start: int = 1) -> list[dict[str, Any]]:
    """Every 10th disabled, every 25th unknown (null), every 40th unknown (absent), 2 owners."""
    out = []
    for number in range(start, start + count):
        has_2fa: Any = True
        if number % 10 == 0:
            has_2fa = False
        elif number % 25 == 0:
            has_2fa = None
        elif number % 40 == 0:
            has_2fa = ABSENT
        permission = "owner" if number - start < 2 else "member"
        out.append(member(number, has_2fa=has_2fa, permission=permission))
    return out


def _user(spec: dict[str, Any], *, with_2fa: bool) -> dict[str, Any]:
    user = {
        "type": "user",
        "uuid": spec["uuid"],
        "nickname": spec["nickname"],
        "display_name": spec["display_name"],
        "links": {"avatar": {"href": f"https://avatar.example/{spec['nickname']}.png"}},
    }
    if spec["account_id"] is not None:
        user["account_id"] = spec["account_id"]
    if with_2fa and spec["has_2fa"] is not ABSENT:
        user["has_2fa_enabled"] = spec["has_2fa"]
    return user


def make_pages(
    workspace: str,
    members: list[dict[str, Any]],
    fetched_at: datetime,
    *,
    pagelen: int = 100,
) -> list[RawPage]:
    """Members pages then permissions pages, as the client would receive them."""
    pages: list[RawPage] = []
    ws = {"type": "workspace", "slug": workspace, "uuid": "{99999999-0000-4000-8000-000000000000}"}
    for listing in ("members", "permissions"):
        chunks = [members[i : i + pagelen] for i in range(0, len(members), pagelen)] or [[]]
        query = "fields=%2Bvalues.user.has_2fa_enabled&" if listing == "members" else ""
        for number, chunk in enumerate(chunks, start=1):
            values = []
            for spec in chunk:
                value = {
                    "type": "workspace_membership",
                    "user": _user(spec, with_2fa=listing == "members"),
                    "workspace": ws,
                }
                if listing == "permissions":
                    value["permission"] = spec["permission"]
                values.append(value)
            document: dict[str, Any] = {
                "pagelen": pagelen,
                "size": len(members),
                "page": number,
                "values": values,
            }
            url = f"{API}/workspaces/{workspace}/{listing}?{query}pagelen={pagelen}&page={number}"
            if number < len(chunks):
                document["next"] = url.replace(f"page={number}", f"page={number + 1}")
            pages.append(
                RawPage(
                    listing=listing,
                    url=url,
                    status_code=200,
                    fetched_at=fetched_at + timedelta(milliseconds=len(pages)),
                    body=orjson.dumps(document),
                )
            )
    return pages


def make_extract(
    workspace: str,
    members: list[dict[str, Any]],
    *,
    day: date | None = None,
    at: datetime | None = None,
    status: str = "complete",
    pages: list[RawPage] | None = None,
    error: str | None = None,
    error_kind: str | None = None,
    emulated: bool = False,
) -> WorkspaceExtract:
    started = at or datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
    pages = make_pages(workspace, members, started) if pages is None else pages
    listings = [
        ListingResult("members", status == "complete", values_read=len(members)),
        ListingResult("permissions", status == "complete", values_read=len(members)),
    ]
    return WorkspaceExtract(
        workspace=workspace,
        source=API,
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        status=status,
        pages=pages,
        listings=listings,
        request_count=len(pages),
        error=error,
        error_kind=error_kind,
        emulated=emulated,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evidence.duckdb"


def plain_connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A plain writable DuckDB connection, as someone tampering with the file would use."""
    return duckdb.connect(str(path), config={"autoinstall_known_extensions": False})


@pytest.fixture
def synth() -> SimpleNamespace:
    """The helpers above, as a fixture (test modules cannot import conftest by name)."""
    return SimpleNamespace(
        ABSENT=ABSENT,
        member=member,
        synthetic_members=synthetic_members,
        make_pages=make_pages,
        make_extract=make_extract,
        plain_connect=plain_connect,
    )
