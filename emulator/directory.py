"""The emulated Atlassian organization: its directory users, as the Admin API v2 lists them.

    org = OrgSpec()                                   # defaults: see the fields
    users = directory_users([WorkspaceSpec("acme", members=250)], date(2026, 11, 27), org)
    users[0]["accountId"], users[0]["claimStatus"], users[0].get("mfaEnabled")
    directory_page(users, start=0, limit=100, links={"self": None, "prev": None, "next": "c"})

    # the same pages without HTTP, for tests (what `extract_directory` would have read):
    directory = offline_directory(users, at=datetime(2026, 11, 27, 6, tzinfo=UTC))
    cut = offline_directory(users, at=at, pages_read=1, error="HTTP 503 …",
                            error_kind=ErrorKind.TRANSIENT)           # read halfway

Model (a pure function of the workspaces, the day and the org, like `emulator.world`): every
person of every workspace but app users is drawn once: outside the organization
(`outside_share`: a personal account, not listed), else listed, unmanaged
(`unmanaged_share`; half of them with an email in the org's domain, not yet claimed) or
managed (email in `domain`, synced from the identity provider); accountStatus inactive for
`inactive_share`, else active; managed accounts carry mfaEnabled (true for `mfa_share`).
`extra_users` org users belong to no workspace. Users are listed in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson

from emulator.world import WorkspaceSpec, _uniform, population
from tasks.atlassian.extract import directory_url
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.models import RawPage
from tasks.vocabulary import ErrorKind, Listing, RunStatus

__all__ = [
    "DEFAULT_ORG",
    "OrgSpec",
    "directory_page",
    "directory_user",
    "directory_users",
    "offline_directory",
]

JSON = dict[str, Any]
PERSONAL_DOMAIN = "mail.example"
ADDED_TO_ORG = "2024-02-01T09:00:00.000Z"


@dataclass(frozen=True, slots=True)
class OrgSpec:
    """The emulated organization. `org_id` is what ATLASSIAN_ORG_ID names."""

    org_id: str = "0a1b2c3d-emu0-4org-8000-000000000001"
    domain: str = "acme.example"  # the verified domain: managed accounts' email
    outside_share: float = 0.08  # members with a personal account, not in the organization
    unmanaged_share: float = 0.12  # org users whose account is not managed
    inactive_share: float = 0.04  # org users whose account is deactivated
    mfa_share: float = 0.3  # managed accounts with Atlassian-account 2SV on
    extra_users: int = 25  # org users in no emulated workspace
    seed: int = 0


DEFAULT_ORG = OrgSpec()


def directory_user(
    row: JSON,
    *,
    email: str | None,
    managed: bool,
    account_status: str = "active",
    mfa_enabled: bool | None = None,
) -> JSON:
    """One directory user (the Admin API's fields) for a member row of `emulator.world`.

    `mfa_enabled` None leaves mfaEnabled out (the API sends it for managed accounts only).
    """
    user: JSON = {
        "accountId": row["account_id"],
        "accountType": "atlassian",
        "accountStatus": account_status,
        "membershipStatus": "active",
        "name": row["display_name"],
        "nickname": row.get("nickname"),
        "emailVerified": email is not None,
        "claimStatus": "managed" if managed else "unmanaged",
        "managementSource": "synced" if managed else None,
        "addedToOrg": ADDED_TO_ORG,
    }
    if email is not None:
        user["email"] = email
    if mfa_enabled is not None:
        user["mfaEnabled"] = mfa_enabled
    return user


def directory_users(specs: Sequence[WorkspaceSpec], day: date, org: OrgSpec) -> list[JSON]:
    """Every user of the organization's directory on `day` (cached per day)."""
    return list(_directory_users(tuple(specs), day.toordinal(), org))


@lru_cache(maxsize=16)
def _directory_users(specs: tuple[WorkspaceSpec, ...], ordinal: int, org: OrgSpec) -> tuple:
    day = date.fromordinal(ordinal)
    extra = WorkspaceSpec(f"org-only-{org.seed}", members=org.extra_users, seed=org.seed)
    users: list[JSON] = []
    for spec in (*specs, extra):
        pop = population(spec, day)
        person = pop.person
        outside = (_uniform(person, 50) < org.outside_share) & (spec is not extra)
        unmanaged = _uniform(person, 51) < org.unmanaged_share
        inactive = _uniform(person, 52) < org.inactive_share
        mfa = _uniform(person, 53) < org.mfa_share
        own_domain = _uniform(person, 54) < 0.5
        listed = np.flatnonzero(~outside & ~pop.app_user)
        for position, row in zip(listed.tolist(), pop.rows(listed), strict=True):
            managed = not unmanaged[position]
            in_org_domain = managed or bool(own_domain[position])
            local = str(row["nickname"])
            users.append(
                directory_user(
                    row,
                    email=f"{local}@{org.domain if in_org_domain else PERSONAL_DOMAIN}",
                    managed=managed,
                    account_status="inactive" if inactive[position] else "active",
                    mfa_enabled=bool(mfa[position]) if managed else None,
                )
            )
    return tuple(users)


def directory_page(users: Sequence[JSON], *, start: int, limit: int, links: JSON) -> JSON:
    """One page of the listing: `{"data": users[start:start+limit], "links": links}`."""
    return {"data": list(users[start : start + limit]), "links": links}


def offline_directory(
    users: Sequence[JSON],
    *,
    at: datetime,
    org_id: str = DEFAULT_ORG.org_id,
    origin: str = "https://api.atlassian.com",
    limit: int = 100,
    pages_read: int | None = None,
    error: str | None = None,
    error_kind: ErrorKind | None = None,
) -> DirectoryExtract:
    """What `extract_directory` would have read: every page (HTTP 200, one ms apart), or the
    first `pages_read` of them with `error` (an incomplete read)."""
    count = max(1, -(-len(users) // limit))
    pages = []
    for number in range(count):
        cursor = f"c{number + 1}" if number + 1 < count else None
        links = {"self": f"c{number}" if number else None, "prev": None, "next": cursor}
        body = directory_page(users, start=number * limit, limit=limit, links=links)
        url = directory_url(origin, org_id, f"c{number}" if number else None)
        fetched = at + timedelta(milliseconds=number)
        pages.append(RawPage(Listing.DIRECTORY, url, 200, fetched, orjson.dumps(body)))
    complete = pages_read is None
    pages = pages[:pages_read]
    return DirectoryExtract(
        org_id=org_id,
        source=f"{origin}/admin/v2/orgs/{quote(org_id, safe='')}",
        started_at=at,
        finished_at=at + timedelta(milliseconds=len(pages) + 1),
        status=RunStatus.COMPLETE if complete else RunStatus.INCOMPLETE,
        pages=pages,
        users_read=len(users) if complete else min(len(users), limit * len(pages)),
        request_count=len(pages),
        error=error,
        error_kind=error_kind,
    )
