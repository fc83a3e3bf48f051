"""Collect one workspace: both listings, every raw page, a verdict on completeness.

Usage::

    from tasks.bitbucket.config import settings_from_env
    from tasks.bitbucket.extract import extract_workspace

    extract = extract_workspace(settings_from_env(), "acme")
    extract.status        # RunStatus: complete | incomplete | failed
    extract.error_kind    # ErrorKind: auth | permission | not_found | bad_request |
                          # transient | rate_limited | anomaly | stopped; None when complete
    extract.error         # what went wrong and what to do (never a secret)

The two listings are read at once, each in its own thread with its own client (their `next`
links are opaque, so the pages of one listing come one after the other; the listings need not
wait for each other). They share the pacer and the OAuth token; an earlier attempt's stall
bounds each listing until a page of it arrives (both start at once, as the members listing
alone did when the listings were read one after the other).
Whatever the timing, the extract's pages are in the same order: every response of the members
listing as received, then every response of the permissions listing as received. Each page
that arrives whole is normalised once its listing has checked it, in a thread of its own,
while the listings wait for their next page (`normalise.PageDeriver`); the extract carries
the results (`derived`), so the store need not parse the run's pages again.

`extract_workspace` never raises for API faults. A listing is incomplete when its `next`
links loop or leave the API's host (`NextLinkPaginator`), a member appears twice (the
membership changed while paging), an entry has no user, a member has neither account_id nor
uuid or has one that is not a JSON string or is empty, or the first page's `size` disagrees
with the distinct members read (a missing or non-integer `size` is logged, never trusted). A
stop (tasks/signals.py) ends both listings and the attempt as `failed`, with every page
received kept. A listing that fails (an error answer, a retry budget spent) stops the other
one too, as soon as its request in flight is answered (that response is kept) or at once if
it is waiting: the attempt can no longer be complete, so more requests would only spend the
hourly budget. The error recorded is the failed listing's, never the other's "stopped";
anomalies (loops, members listed twice, a wrong `size`, a member without an id) stop
nothing: both listings are read and every reason is given. Two listings each read whole are
still not one whole population when they name different members, or none (`_verdict`).
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from tasks.bitbucket.ambiguous_json import refuse_ambiguous
from tasks.bitbucket.client import BitbucketClient, FetchedPage
from tasks.bitbucket.clock import SYSTEM_CLOCK, Clock, stopped_by
from tasks.bitbucket.config import PAGELEN, BitbucketSettings
from tasks.bitbucket.exceptions import BitbucketError, CollectionStopped, PaginationAnomaly
from tasks.bitbucket.messages import credentials_echoed
from tasks.bitbucket.models import ListingResult, RawPage, WorkspaceExtract
from tasks.bitbucket.paginator import NextLinkPaginator
from tasks.bitbucket.ratelimit import RequestPacer, pacer_for
from tasks.bitbucket.secret import scrub
from tasks.normalise import PageDeriver, member_key, roles_of
from tasks.signals import StopFlag, stop_scope
from tasks.vocabulary import WORKSPACE_LISTINGS, ErrorKind, Listing, RunStatus

__all__ = ["extract_workspace", "listing_url"]

logger = logging.getLogger("bb2sv.bitbucket")

# `+` must reach the server as %2B, or it decodes to a space and the field is not added.
MEMBERS_QUERY = f"pagelen={PAGELEN}&fields=%2Bvalues.user.has_2fa_enabled"
PERMISSIONS_QUERY = f"pagelen={PAGELEN}"
# Why a listing stops when the other one failed (`CollectionStopped.reason`).
OTHER_LISTING_FAILED = "the other listing's failure"


def listing_url(api_url: str, workspace: str, listing: Listing) -> str:
    """First-page URL of a listing; the slug (or {uuid}) is percent-encoded.

    >>> listing_url("https://api.bitbucket.org/2.0", "acme", Listing.MEMBERS)
    'https://api.bitbucket.org/2.0/workspaces/acme/members?pagelen=100&fields=%2Bvalues.user.has_2fa_enabled'
    """
    query = MEMBERS_QUERY if listing == Listing.MEMBERS else PERMISSIONS_QUERY
    return f"{api_url}/workspaces/{quote(workspace, safe='')}/{listing}?{query}"


@dataclass(slots=True)
class ListingWalk:
    """What walking one listing produced: the result, and the fault that stopped it, if any."""

    result: ListingResult
    error: BitbucketError | None = None
    with_2fa_field: int = 0  # members whose user object carries has_2fa_enabled at all
    problems: list[str] = field(default_factory=list)
    # (member key, page first seen, page seen again) for members listed twice
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # member key → page first seen on
    uuid_of: dict[str, str] = field(default_factory=dict)  # member key → uuid, if another

    def reason(self) -> str | None:
        """One precise sentence (or a few) on why the listing is not whole; None if it is."""
        reasons = list(self.problems)
        if self.duplicates:
            key, first, again = self.duplicates[0]
            count = len(self.duplicates)
            reasons.append(
                f"{count} member{'s were' if count > 1 else ' was'} listed twice (first: {key} "
                f"on pages {first} and {again}): the membership changed during pagination"
            )
        if not reasons:
            return None
        text = "; ".join(reasons[:3])
        return text + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")


def walk_listing(
    bb: BitbucketClient, listing: Listing, arrived: Callable[[RawPage], None] | None = None
) -> ListingWalk:
    """Follow one listing to its end, checking that the population is whole. `arrived` is
    given each page that arrived whole, once this thread has checked it (`PageDeriver.add`)."""
    paginator = NextLinkPaginator(listing_url(bb.settings.api_url, bb.workspace, listing))
    walk = ListingWalk(ListingResult(listing=listing, complete=False))
    seen = walk.seen
    url: str | None = paginator.first_url
    try:
        while url is not None:
            fetched = bb.fetch(url, listing, paginator.pages + 1)
            try:
                url = _check_page(fetched, paginator, walk, bb.workspace)
            finally:
                # Handed over once this thread is done with the page, so that the deriver
                # does not take turns with its checks on the GIL.
                if arrived is not None:
                    arrived(fetched.page)
    except PaginationAnomaly as exc:
        walk.problems.insert(0, exc.message)
    except BitbucketError as exc:
        walk.error = exc
    walk.result.values_read = len(seen)
    size = walk.result.reported_size
    if walk.error is None and walk.reason() is None and size is not None and size != len(seen):
        walk.problems.append(
            f"the first page reported size {size} but {len(seen)} distinct members were read"
        )
    if walk.error is not None:
        walk.result.reason = walk.error.message
    else:
        walk.result.reason = walk.reason()
        walk.result.complete = walk.result.reason is None
    return walk


def _check_page(
    fetched: FetchedPage, paginator: NextLinkPaginator, walk: ListingWalk, workspace: str
) -> str | None:
    """Check one page that arrived whole into `walk`; the next page's URL, or None."""
    document = fetched.document
    values = document["values"]
    users = [value.get("user") if isinstance(value, dict) else None for value in values]
    keys = [member_key(user) if isinstance(user, dict) else None for user in users]
    page_number = paginator.count_page(keys)
    refuse_ambiguous(fetched.page.body, page=page_number, document=fetched.document_of_body)
    listing = walk.result.listing
    if page_number == 1:
        walk.result.reported_size = _reported_size(workspace, listing, document)
    logger.debug(
        "%s %s page %d: %d values, HTTP %d, %d bytes",
        workspace,
        listing,
        page_number,
        len(values),
        fetched.page.status_code,
        len(fetched.page.body),
    )
    for user, key in zip(users, keys, strict=True):
        _check_member(user, key, page_number, walk)
    return paginator.next_url(document)


def _check_member(user: object, key: str | None, page_number: int, walk: ListingWalk) -> None:
    if not isinstance(user, dict):
        walk.problems.append(f"page {page_number} has an entry without a user object")
        return
    wrong = [name for name in ("account_id", "uuid") if not isinstance(user.get(name), str | None)]
    if wrong:
        # Read as text it would be another member: the population cannot be trusted.
        walk.problems.append(
            f"page {page_number} has a member whose {wrong[0]} is a JSON "
            f"{_json_type(user[wrong[0]])}, not a string"
        )
        return
    if not key:  # none, or an empty string: nothing to tell this member from another by
        walk.problems.append(f"page {page_number} has a member with neither account_id nor uuid")
        return
    if empty := [name for name in ("account_id", "uuid") if user.get(name) == ""]:
        # Keyed by its uuid here (`account_id or uuid`) but by '' in the views (coalesce):
        # two such members would be one there.
        walk.problems.append(f"page {page_number} has a member whose {empty[0]} is empty")
        return
    if key in walk.seen:
        walk.duplicates.append((key, walk.seen[key], page_number))
        return
    walk.seen[key] = page_number
    if isinstance(uuid := user.get("uuid"), str) and uuid != key:
        walk.uuid_of[key] = uuid
    if "has_2fa_enabled" in user:
        walk.with_2fa_field += 1


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string"}
    return names.get(type(value)) or {list: "array", dict: "object"}.get(type(value), "value")


def _reported_size(workspace: str, listing: Listing, document: dict) -> int | None:
    """The first page's `size` when it is a count; otherwise None, and the log says why."""
    if "size" not in document:
        logger.info(
            "%s %s: the first page has no `size`; completeness rests on the next links alone",
            workspace,
            listing,
        )
        return None
    size = document["size"]
    if not _is_count(size):
        logger.warning(
            "%s %s: the first page's `size` is %.40r (a JSON %s), not a count; it is ignored "
            "and completeness rests on the next links alone",
            workspace,
            listing,
            size,
            _json_type(size),
        )
        return None
    return size


def extract_workspace(
    settings: BitbucketSettings,
    workspace: str,
    *,
    client: httpx.Client | None = None,
    clock: Clock = SYSTEM_CLOCK,
    pacer: RequestPacer | None = None,
    rng: random.Random | None = None,
    stall_until: float | None = None,
) -> WorkspaceExtract:
    """Read members and permissions of one workspace, at once. Never raises for API faults.

    `client` lets a caller supply its own httpx.Client (it is not closed; both listings send
    through its pool, so a whole-response deadline cutting one listing's connection may cut
    a connection the other listing took over, which that one then retries); `clock`,
    `pacer` and `rng` exist for tests and for sharing one pacer explicitly. `stall_until`
    (on `clock.monotonic()`) carries an earlier attempt's stall over: until a page of a
    listing succeeds, no page of it may keep failing past it.
    """
    started_at = clock.now()
    pacer = pacer or pacer_for(settings)
    # A seeded rng gives each listing a seeded one of its own: jitter stays reproducible
    # whichever thread draws first.
    rngs = [
        random.Random(rng.getrandbits(64)) if rng is not None else None for _ in WORKSPACE_LISTINGS
    ]
    deriver = PageDeriver()  # normalises pages while the listings wait for the next ones
    with stop_scope() as halt:
        readers = [
            BitbucketClient(
                settings,
                workspace,
                http=client,
                clock=stopped_by(clock, halt),
                pacer=pacer,
                rng=listing_rng,
                stall_until=stall_until,
                stop=halt,
            )
            for listing_rng in rngs
        ]
        try:
            walks = _walk_at_once(readers, halt, deriver.add)
        finally:
            for reader in readers:
                reader.close()
            # Stopped: what is not normalised yet is left to the store.
            derived = deriver.finish(cancel=halt.requested)
    members = walks[WORKSPACE_LISTINGS.index(Listing.MEMBERS)]
    members_read = readers[WORKSPACE_LISTINGS.index(Listing.MEMBERS)].successful_pages
    status, error, error_kind, failed = _verdict(workspace, walks, members_read)
    if masked := sum(reader.pages_masked for reader in readers):
        echoed = credentials_echoed(masked)
        error = echoed if error is None else f"{error} Also, {echoed[0].lower()}{echoed[1:]}"
        if status == RunStatus.COMPLETE:
            status, error_kind = RunStatus.INCOMPLETE, ErrorKind.ANOMALY
    request_count = sum(reader.request_count for reader in readers)
    _warn_if_2fa_hidden(workspace, members)
    if error is not None:
        error = scrub(error, settings.auth.secret_values())
        log = logger.error if status == RunStatus.FAILED else logger.warning
        log("%s: %s (%s)", workspace, status, error)
    else:
        logger.info(
            "%s: %s, %d members, %d requests",
            workspace,
            status,
            members.result.values_read,
            request_count,
        )
    return WorkspaceExtract(
        workspace=workspace,
        source=settings.api_url,
        started_at=started_at,
        finished_at=clock.now(),
        status=status,
        # Listing by listing, each as received: the same order whatever the threads' timing.
        pages=[page for reader in readers for page in reader.pages],
        listings=[walk.result for walk in walks],
        request_count=request_count,
        error=error,
        error_kind=error_kind,
        emulated=settings.emulated,  # from the configured URL, never a response header
        # The stall of the listing whose failure is recorded; the other one's is its stop.
        stalled_since=None if failed is None else readers[walks.index(failed)].stalled_since,
        derived=derived,
    )


def _walk_at_once(
    readers: list[BitbucketClient], halt: StopFlag, arrived: Callable[[RawPage], None]
) -> list[ListingWalk]:
    """Walk WORKSPACE_LISTINGS, each with its reader in its own thread; the walks in that
    order. The first listing to fail requests `halt`, which stops the others."""

    def walk(reader: BitbucketClient, listing: Listing) -> ListingWalk:
        try:
            walked = walk_listing(reader, listing, arrived)
        except BaseException:  # not an API fault (a bug): the other listings stop before it rises
            halt.request(OTHER_LISTING_FAILED)
            raise
        if walked.error is not None and not isinstance(walked.error, CollectionStopped):
            halt.request(OTHER_LISTING_FAILED)
        return walked

    with ThreadPoolExecutor(len(readers), thread_name_prefix="bb2sv-listing") as pool:
        # Each thread runs in a copy of this context, so Prefect's run context (and the
        # logs it collects) follows the listings into their threads.
        futures = [
            pool.submit(contextvars.copy_context().run, walk, reader, listing)
            for reader, listing in zip(readers, WORKSPACE_LISTINGS, strict=True)
        ]
    return [future.result() for future in futures]


def _stopped_by_other(walk: ListingWalk) -> bool:
    error = walk.error
    return isinstance(error, CollectionStopped) and error.reason == OTHER_LISTING_FAILED


def _verdict(
    workspace: str, walks: list[ListingWalk], members_read: int
) -> tuple[RunStatus, str | None, ErrorKind | None, ListingWalk | None]:
    """(status, error, error_kind, the walk whose error it is) from the walks.

    The error is that of the first listing (in WORKSPACE_LISTINGS order) that failed on its
    own, never a listing's stop because the other one failed. The attempt is `failed` when
    no members page arrived (nothing usable) or when it was stopped, else `incomplete`.
    """
    failed = next(
        (walk for walk in walks if walk.error is not None and not _stopped_by_other(walk)),
        None,
    )
    if failed is not None:
        assert failed.error is not None
        status = RunStatus.INCOMPLETE if members_read else RunStatus.FAILED
        if failed.error.kind is ErrorKind.STOPPED:
            status = RunStatus.FAILED  # interrupted: whatever was read proves nothing whole
        return status, failed.error.message, failed.error.kind, failed
    broken = [walk.result for walk in walks if not walk.result.complete]
    if broken:
        reasons = "; ".join(f"{result.listing} listing: {result.reason}" for result in broken)
        error = (
            f"workspace '{workspace}' was not read whole: {reasons}. Run the collection again; "
            "if it repeats, the API's pagination is at fault."
        )
        return RunStatus.INCOMPLETE, error, ErrorKind.ANOMALY, None
    disagreement = _listings_disagree(walks)
    if disagreement is not None:
        error = f"workspace '{workspace}' was not read whole: {disagreement}"
        return RunStatus.INCOMPLETE, error, ErrorKind.ANOMALY, None
    return RunStatus.COMPLETE, None, None, None


def _listings_disagree(walks: list[ListingWalk]) -> str | None:
    """Why two listings, each read whole, are still not one whole population; None if
    they are. The 2SV states come from the members listing and the permissions from the
    other: someone in only one of them would be judged without the other half, or not at
    all, and a workspace always has an owner, so an empty one cannot be whole."""
    members = walks[WORKSPACE_LISTINGS.index(Listing.MEMBERS)]
    permissions = walks[WORKSPACE_LISTINGS.index(Listing.PERMISSIONS)]
    if not members.seen:
        return (
            "the members listing is empty, yet every workspace has at least one owner. Check "
            "that the token belongs to a workspace admin, then run the collection again."
        )
    # Matched by normalise's rule, so that what is checked here is what the roles join does:
    # each member's permissions entry, named by that entry's own key.
    keys = list(members.seen)
    entries = {key: key for key in permissions.seen}
    found = roles_of(entries, keys, lambda places: [members.uuid_of.get(keys[i]) for i in places])
    roleless = {key for key, entry in zip(keys, found, strict=True) if entry is None}
    matched = set(found) - {None}
    apart = [
        (len(keys), name, min(keys, key=lambda key: (walk.seen[key], key)))
        for name, walk, keys in (
            ("permissions", permissions, permissions.seen.keys() - matched),
            ("members", members, roleless),
        )
        if keys
    ]
    if not apart:
        return None
    counts = " and ".join(
        f"{count} member{'s' if count > 1 else ''} only in the {name} listing (first: {first})"
        for count, name, first in apart
    )
    return (
        f"the members and permissions listings disagree: {counts}. The membership changed "
        "while they were read, or the API is inconsistent; run the collection again."
    )


def _warn_if_2fa_hidden(workspace: str, members: ListingWalk) -> None:
    read = members.result.values_read
    if read and members.with_2fa_field == 0:
        logger.warning(
            "%s: Bitbucket returned no has_2fa_enabled for any of the %d members: the "
            "credentials are probably not a workspace admin's, so every member's 2SV state "
            "is 'unknown'. Use an admin's token to prove 2SV.",
            workspace,
            read,
        )
    elif members.with_2fa_field < read:
        logger.warning(
            "%s: %d of %d members came without has_2fa_enabled; they count as 'unknown'",
            workspace,
            read - members.with_2fa_field,
            read,
        )
