"""Pages of a whole listing as the emulator would serve them, built without HTTP.

The year-of-history benchmark needs 365 distinct days of 10,000 members; fetching each over
HTTP would time the emulator, not bb2sv. These bodies come from the same world and payload
builders the emulator's routes use, so their shape and size are the real ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import orjson

from emulator.payloads import membership, workspace_ref
from emulator.world import WorkspaceSpec, population
from tasks.bitbucket.models import RawPage, WorkspaceExtract
from tasks.vocabulary import Listing

ORIGIN = "https://api.bitbucket.org"
PAGELEN = 100


def listing_pages(spec: WorkspaceSpec, day: date, listing: str, at: datetime) -> list[RawPage]:
    pop = population(spec, day)
    order = np.arange(spec.members, dtype=np.int64)
    ws = workspace_ref(spec, ORIGIN)
    path = f"{ORIGIN}/2.0/workspaces/{spec.slug}/{listing}?pagelen={PAGELEN}"
    if listing == Listing.MEMBERS:
        path += "&fields=%2Bvalues.user.has_2fa_enabled"
    pages = []
    last = max(1, -(-len(order) // PAGELEN))
    for page in range(1, last + 1):
        rows = pop.rows(order[(page - 1) * PAGELEN : page * PAGELEN])
        body = {"pagelen": PAGELEN, "size": len(order), "page": page}
        body["values"] = [
            membership(
                user,
                slug=spec.slug,
                origin=ORIGIN,
                ws=ws,
                with_2fa=listing == Listing.MEMBERS,
                with_permission=listing == Listing.PERMISSIONS,
            )
            for user in rows
        ]
        if page < last:
            body["next"] = f"{path}&page={page + 1}"
        url = path if page == 1 else f"{path}&page={page}"
        fetched = at + timedelta(milliseconds=page)
        pages.append(RawPage(listing, url, 200, fetched, orjson.dumps(body)))
    return pages


def synthetic_extract(spec: WorkspaceSpec, day: date) -> WorkspaceExtract:
    at = datetime.combine(day, time(6, 0), tzinfo=UTC)
    pages = listing_pages(spec, day, Listing.MEMBERS, at) + listing_pages(
        spec, day, Listing.PERMISSIONS, at
    )
    return WorkspaceExtract(
        workspace=spec.slug,
        source=f"{ORIGIN}/2.0",
        started_at=at,
        finished_at=pages[-1].fetched_at,
        status="complete",
        pages=pages,
        request_count=len(pages),
        emulated=True,
    )
