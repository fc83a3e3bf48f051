"""Bitbucket listing pages and whole extracts built without HTTP, by the emulator's own payload
code: what `extract_workspace` would have read, for tests and benchmarks.

From an emulator world (the population of a `WorkspaceSpec` on a day, as the emulator serves
it to an admin token)::

    from emulator.offline import make_extract
    extract = make_extract(WorkspaceSpec("year", members=10_000, seed=7), day=date(2026, 3, 1))

From explicit member rows (dicts with account_id, uuid, nickname, display_name, permission,
has_2fa_enabled: the shape of `Population.rows()`)::

    from emulator.offline import ABSENT, make_extract, member, synthetic_members
    rows = [
        member(1, permission="owner"),           # user1, "User Number 1", 2SV on
        member(2, has_2fa_enabled=None),         # null: unknown
        member(3, has_2fa_enabled=ABSENT),       # field missing (a non-admin caller's view)
        member(4, account_id=None),              # an app or bot: known only by uuid
        member("alice", False, "owner"),         # by nickname: display name "Alice"
    ] + synthetic_members(250, start=10)         # the usual mix (see synthetic_members)
    extract = make_extract("acme", rows, day=date(2026, 3, 1))     # run at 06:00 UTC
    store.record_run(extract, policy=DEFAULT_POLICY)

    # a run that stopped after its first page
    make_extract("acme", rows, at=when, status=RunStatus.INCOMPLETE, pages_read=1,
                 error="HTTP 503 on page 2 after 5 attempts", error_kind=ErrorKind.TRANSIENT)

Pages: the members listing, then the permissions listing, `pagelen` values a page, each an
envelope with `pagelen`, `size`, `page`, `values` and an opaque `next` on every page but the
last. URLs are the client's own (`listing_url`: members carry
`fields=%2Bvalues.user.has_2fa_enabled`, and `&page=N` is added after the first page);
values are `emulator.payloads.membership` objects, with `has_2fa_enabled` on members pages
and `permission` on permissions pages. Page i of the extract is fetched i ms after `at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import EllipsisType
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import orjson

from emulator.payloads import listing_values
from emulator.world import WorkspaceSpec, population
from tasks.bitbucket.config import PAGELEN
from tasks.bitbucket.extract import listing_url
from tasks.bitbucket.models import ListingResult, RawPage, WorkspaceExtract
from tasks.vocabulary import WORKSPACE_LISTINGS, ErrorKind, Listing, RunStatus

__all__ = [
    "ABSENT",
    "ORIGIN",
    "RUN_TIME",
    "failed_extract",
    "make_extract",
    "make_pages",
    "member",
    "synthetic_members",
]

Row = dict[str, Any]
ORIGIN = "https://api.bitbucket.org"
RUN_TIME = time(6, 0)  # when `make_extract(day=...)` runs: the daily deployment's 06:00 UTC


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # has_2fa_enabled missing from the user object (non-admin caller)


def member(
    who: int | str,
    has_2fa_enabled: object = True,
    permission: str = "member",
    *,
    display_name: str | None = None,
    account_id: str | None | EllipsisType = ...,
) -> Row:
    """One member row. `who` is a number (nickname `user7`, display name "User Number 7",
    ids made from the number) or a nickname (display name the nickname title-cased,
    account_id `557058:<nickname>`). `has_2fa_enabled=ABSENT` leaves the field out of the
    user object; `account_id=None` makes a member known only by uuid."""
    if isinstance(who, int):
        nickname, name = f"user{who}", f"User Number {who}"
        uuid = f"{{{who:08d}-1111-4222-8333-{who:012d}}}"
        derived = f"557058:{who:08d}-aaaa-4bbb-8ccc-{who:012d}"
    else:
        nickname, name = who, who.title()
        uuid = "{" + str(uuid5(NAMESPACE_URL, f"bb2sv-offline:{who}")) + "}"
        derived = f"557058:{who}"
    row: Row = {"uuid": uuid, "nickname": nickname, "permission": permission}
    row["display_name"] = name if display_name is None else display_name
    if account_id is not None:
        row["account_id"] = derived if account_id is ... else account_id
    if has_2fa_enabled is not ABSENT:
        row["has_2fa_enabled"] = has_2fa_enabled
    return row


def synthetic_members(count: int, *, start: int = 1) -> list[Row]:
    """Numbered members from `start`: every 10th disabled, the other multiples of 25 unknown
    (null), the first two owners, everyone else enabled. None lacks the field: tests that
    need that pass `member(…, has_2fa_enabled=ABSENT)`."""
    out = []
    for number in range(start, start + count):
        state: object = True
        if number % 10 == 0:
            state = False
        elif number % 25 == 0:
            state = None
        out.append(member(number, state, "owner" if number - start < 2 else "member"))
    return out


def _spec(workspace: str | WorkspaceSpec) -> WorkspaceSpec:
    return workspace if isinstance(workspace, WorkspaceSpec) else WorkspaceSpec(workspace)


def _listing_pages(
    spec: WorkspaceSpec,
    members: Sequence[Row],
    listing: Listing,
    fetched_at: datetime,
    *,
    origin: str,
    pagelen: int,
) -> list[RawPage]:
    first = listing_url(f"{origin}/2.0", spec.slug, listing)
    last = max(1, -(-len(members) // pagelen))
    pages = []
    for number in range(1, last + 1):
        body: Row = {"pagelen": pagelen, "size": len(members), "page": number}
        body["values"] = listing_values(
            members[(number - 1) * pagelen : number * pagelen],
            spec,
            origin,
            with_2fa=listing == Listing.MEMBERS,
            with_permission=listing == Listing.PERMISSIONS,
        )
        if number < last:
            body["next"] = f"{first}&page={number + 1}"
        url = first if number == 1 else f"{first}&page={number}"
        at = fetched_at + timedelta(milliseconds=number - 1)
        pages.append(RawPage(listing, url, 200, at, orjson.dumps(body)))
    return pages


def make_pages(
    workspace: str | WorkspaceSpec,
    members: Sequence[Row],
    fetched_at: datetime,
    *,
    origin: str = ORIGIN,
    pagelen: int = PAGELEN,
) -> list[RawPage]:
    """Members pages then permissions pages, as the client receives them (HTTP 200 each),
    the first fetched at `fetched_at` and each next one a millisecond later."""
    spec = _spec(workspace)
    pages: list[RawPage] = []
    for listing in WORKSPACE_LISTINGS:
        at = fetched_at + timedelta(milliseconds=len(pages))
        pages += _listing_pages(spec, members, listing, at, origin=origin, pagelen=pagelen)
    return pages


def make_extract(
    workspace: str | WorkspaceSpec,
    members: Sequence[Row] | None = None,
    *,
    day: date | None = None,
    at: datetime | None = None,
    status: RunStatus = RunStatus.COMPLETE,
    pages: list[RawPage] | None = None,
    pages_read: int | None = None,
    error: str | None = None,
    error_kind: ErrorKind | None = None,
    emulated: bool = False,
    origin: str = ORIGIN,
    pagelen: int = PAGELEN,
) -> WorkspaceExtract:
    """One collection of `workspace`, started at `at` (or `RUN_TIME` on `day`).

    `members` default: the emulator world's population of the `WorkspaceSpec` on `day`.
    `pages` replaces the built pages (e.g. an HTTP error page); `pages_read` keeps only the
    first N (a run cut short). `status` and `error_kind` may be given as their text. Each
    listing's `ListingResult` is complete when `status` is, and counts the members on its
    HTTP 200 pages; the run finishes a millisecond after its last page."""
    spec = _spec(workspace)
    if at is None:
        if day is None:
            raise TypeError("make_extract needs `day` or `at`")
        at = datetime.combine(day, RUN_TIME, tzinfo=UTC)
    if members is None:
        if not isinstance(workspace, WorkspaceSpec):
            raise TypeError("make_extract needs `members`, or a WorkspaceSpec to take them from")
        members = population(spec, at.date()).expected()
    if pages is None:
        pages = make_pages(spec, members, at, origin=origin, pagelen=pagelen)
    pages = pages[:pages_read]
    status = RunStatus(status)
    complete = status == RunStatus.COMPLETE
    listings = [
        ListingResult(
            listing,
            complete,
            reason=None if complete else error or status,
            reported_size=len(members),
            values_read=min(
                len(members),
                pagelen * sum(p.listing == listing and p.status_code == 200 for p in pages),
            ),
        )
        for listing in WORKSPACE_LISTINGS
    ]
    return WorkspaceExtract(
        workspace=spec.slug,
        source=f"{origin}/2.0",
        started_at=at,
        finished_at=max([at, *(page.fetched_at for page in pages)]) + timedelta(milliseconds=1),
        status=status,
        pages=pages,
        listings=listings,
        request_count=len(pages),
        error=error,
        error_kind=None if error_kind is None else ErrorKind(error_kind),
        emulated=emulated,
    )


def failed_extract(
    workspace: str,
    *,
    day: date,
    status_code: int,
    body: bytes,
    error: str,
    error_kind: ErrorKind | None = None,
    origin: str = ORIGIN,
) -> WorkspaceExtract:
    """A run whose only response was an error on the first members page (nothing usable)."""
    at = datetime.combine(day, RUN_TIME, tzinfo=UTC)
    url = listing_url(f"{origin}/2.0", workspace, Listing.MEMBERS)
    page = RawPage(Listing.MEMBERS, url, status_code, at, body)
    return make_extract(
        workspace,
        [],
        at=at,
        status=RunStatus.FAILED,
        pages=[page],
        error=error,
        error_kind=error_kind,
        origin=origin,
    )
