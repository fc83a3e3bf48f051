"""Read the whole organization directory, or say why not.

Usage::

    from tasks.atlassian.config import directory_settings_from_env
    from tasks.atlassian.extract import extract_directory

    directory = extract_directory(directory_settings_from_env())
    directory.status       # RunStatus: complete | incomplete | failed
    directory.error        # what went wrong and what to do (never the key)

`extract_directory` never raises for API faults. It follows `links.next` cursors from
`GET {ATLASSIAN_ADMIN_API_URL}/admin/v2/orgs/{org}/directories/-/users?limit=100` with the
Bitbucket client (retries, 429 with `X-RateLimit-Reset`, pacing, every response kept). The
read is incomplete when a cursor leads back to a page already read (`NextLinkPaginator`),
a user is listed twice, a user has no accountId, or a page's `links` is not a mapping.
"""

from __future__ import annotations

import logging
import random
from urllib.parse import quote

import httpx

from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.messages import DIRECTORY_API
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.ambiguous_json import refuse_ambiguous
from tasks.bitbucket.client import BitbucketClient
from tasks.bitbucket.clock import SYSTEM_CLOCK, Clock
from tasks.bitbucket.exceptions import BitbucketError, PaginationAnomaly
from tasks.bitbucket.extract import ListingWalk
from tasks.bitbucket.messages import credentials_echoed
from tasks.bitbucket.models import ListingResult
from tasks.bitbucket.paginator import NextLinkPaginator
from tasks.bitbucket.ratelimit import RequestPacer
from tasks.bitbucket.secret import scrub
from tasks.vocabulary import ErrorKind, Listing, RunStatus

__all__ = ["PAGE_LIMIT", "directory_url", "extract_directory"]

logger = logging.getLogger("bb2sv.atlassian")

PAGE_LIMIT = 100
CONSEQUENCE = "Until it is read whole, no member passes on atlassian_2sv or idp_sso."


def directory_url(api_url: str, org_id: str, cursor: str | None = None) -> str:
    """URL of the first page, or of the page a cursor names (both percent-encoded).

    >>> directory_url("https://api.atlassian.com", "org-1", "a/b")
    'https://api.atlassian.com/admin/v2/orgs/org-1/directories/-/users?limit=100&cursor=a%2Fb'
    """
    url = f"{api_url}/admin/v2/orgs/{quote(org_id, safe='')}/directories/-/users?limit={PAGE_LIMIT}"
    return url if cursor is None else f"{url}&cursor={quote(cursor, safe='')}"


def extract_directory(
    settings: DirectorySettings,
    *,
    client: httpx.Client | None = None,
    clock: Clock = SYSTEM_CLOCK,
    pacer: RequestPacer | None = None,
    rng: random.Random | None = None,
) -> DirectoryExtract:
    """Read every user of the organization's directories. Never raises for API faults."""
    started_at = clock.now()
    with BitbucketClient(
        settings.http,
        settings.org_id,
        http=client,
        clock=clock,
        pacer=pacer,
        rng=rng,
        api=DIRECTORY_API,
    ) as reader:
        walk = _walk(reader, settings)
    directory = DirectoryExtract(
        org_id=settings.org_id,
        source=settings.source,
        started_at=started_at,
        finished_at=clock.now(),
        status=RunStatus.COMPLETE,
        pages=reader.pages,
        users_read=walk.result.values_read,
        request_count=reader.request_count,
        emulated=settings.http.emulated,  # from the configured URL, never a response header
    )
    if walk.error is not None:
        directory.status = RunStatus.INCOMPLETE if reader.successful_pages else RunStatus.FAILED
        directory.error_kind = walk.error.kind
        directory.error = f"{walk.error.message} {CONSEQUENCE}"
    elif (reason := walk.reason()) is not None:
        directory.status, directory.error_kind = RunStatus.INCOMPLETE, ErrorKind.ANOMALY
        directory.error = (
            f"{directory.label} was not read whole: {reason}. Run the collection again; if "
            f"it repeats, the Admin API's pagination is at fault. {CONSEQUENCE}"
        )
    if reader.pages_masked:
        echoed = credentials_echoed(reader.pages_masked)
        before = (directory.error or "").removesuffix(CONSEQUENCE).strip()
        directory.error = f"{before} {echoed} {CONSEQUENCE}".strip()
        if directory.status == RunStatus.COMPLETE:
            directory.status, directory.error_kind = RunStatus.INCOMPLETE, ErrorKind.ANOMALY
    if directory.error is None:
        logger.info(
            "%s: complete, %d users, %d requests",
            directory.label,
            directory.users_read,
            directory.request_count,
        )
    else:
        directory.error = scrub(directory.error, settings.http.auth.secret_values())
        logger.error("%s: %s (%s)", directory.label, directory.status, directory.error)
    return directory


def _walk(reader: BitbucketClient, settings: DirectorySettings) -> ListingWalk:
    """Follow the cursors to the end, checking that every user is there once."""
    first = directory_url(settings.http.api_url, settings.org_id)
    paginator = NextLinkPaginator(first)
    walk = ListingWalk(ListingResult(listing=Listing.DIRECTORY, complete=False))
    seen: dict[str, int] = {}  # accountId → page it was first seen on
    url: str | None = first
    try:
        while url is not None:
            fetched = reader.fetch(url, Listing.DIRECTORY, paginator.pages + 1)
            document = fetched.document
            ids = [user.get("accountId") if isinstance(user, dict) else None
                   for user in document["data"]]  # fmt: skip
            number = paginator.count_page(ids)
            refuse_ambiguous(fetched.page.body, page=number, document=fetched.document_of_body)
            logger.debug("%s page %d: %d users", settings.org_id, number, len(ids))
            for account_id in ids:
                if not isinstance(account_id, str) or not account_id:
                    walk.problems.append(f"page {number} has a user without an accountId")
                elif account_id in seen:
                    walk.duplicates.append((account_id, seen[account_id], number))
                else:
                    seen[account_id] = number
            url = paginator.follow(_next_url(document, settings, number))
    except PaginationAnomaly as exc:
        walk.problems.insert(0, exc.message)
    except BitbucketError as exc:
        walk.error = exc
    walk.result.values_read = len(seen)
    return walk


def _next_url(document: dict, settings: DirectorySettings, page: int) -> str | None:
    """The URL `links.next` names (a cursor), None after the last page."""
    links = document.get("links")
    if links is None:
        return None
    if not isinstance(links, dict):
        raise PaginationAnomaly(f"page {page} has `links` that is not a mapping: {links!r:.200}")
    cursor = links.get("next")
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise PaginationAnomaly(
            f"page {page} has a `links.next` that is not a cursor: {cursor!r:.200}"
        )
    return directory_url(settings.http.api_url, settings.org_id, cursor)
