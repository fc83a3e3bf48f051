"""Plain data that the Bitbucket client hands to the rest of the pipeline.

These are the contract between extraction and the evidence store: the store keeps
`RawPage`s verbatim and re-derives observations from them (`tasks.normalise`), so nothing
here may carry a credential.

Usage::

    page = RawPage(Listing.MEMBERS, url, 200, fetched_at=clock.now(), body=response.content)
    page.sha256                                   # computed from the body
    extract = extract_workspace(settings, "acme") # a WorkspaceExtract
    extract.status, extract.error_kind            # RunStatus, ErrorKind | None
    [(r.listing, r.complete, r.reason) for r in extract.listings]   # ListingResults
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tasks.canonical import sha256_hex
from tasks.vocabulary import ErrorKind, Listing, RunStatus

if TYPE_CHECKING:
    from tasks.normalise import PageMemo

__all__ = ["ListingResult", "RawPage", "WorkspaceExtract"]


@dataclass(frozen=True, slots=True)
class RawPage:
    """One HTTP response exactly as received (failed attempts included, in order).

    `url` never contains credentials; `body` is the response body as received, after HTTP
    content decoding (gzip, deflate) and at most `client.MAX_BODY_BYTES`.
    """

    listing: Listing
    url: str
    status_code: int
    fetched_at: datetime  # timezone-aware UTC
    body: bytes
    sha256: str = ""
    # True when `sha256` was computed here from `body` (not given): the evidence store then
    # need not hash the body again before trusting the name (an extract's pages are hashed
    # once; a spooled page, whose sha256 is read back, is checked).
    sha256_of_body: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", sha256_hex(self.body))
            object.__setattr__(self, "sha256_of_body", True)


@dataclass(slots=True)
class ListingResult:
    """Outcome of walking one paginated listing to its end (or failing to)."""

    listing: Listing
    complete: bool
    reason: str | None = None  # why incomplete: loop, duplicate member, size mismatch, HTTP error…
    reported_size: int | None = None  # the `size` field of the first page, when present
    values_read: int = 0


@dataclass(slots=True)
class WorkspaceExtract:
    """Everything one collection of one workspace produced.

    `status` is `complete` only when both listings ran to the end with no anomaly.
    `failed` means no members page arrived (auth error, not found, budget exhausted before
    the first page) or the read was stopped; `incomplete` means some pages arrived but the
    population is not whole.
    """

    workspace: str
    source: str  # API base URL, e.g. https://api.bitbucket.org/2.0 (no credentials)
    started_at: datetime
    finished_at: datetime
    status: RunStatus
    pages: list[RawPage] = field(default_factory=list)
    listings: list[ListingResult] = field(default_factory=list)
    request_count: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None  # why it is not complete, without parsing `error`
    emulated: bool = False  # read from a loopback URL, i.e. the emulator (is_emulator_url)
    # clock.monotonic() when the page still failing at the end was first tried (None if the
    # last page succeeded): a retry of the workspace carries the stall's budget over.
    stalled_since: float | None = None
    # Each page's members and roles, normalised as it arrived (`normalise.PageDeriver`): the
    # store finds them there instead of parsing the run's pages again. Not evidence: the
    # store re-derives whatever is missing, and verify re-derives all from stored bodies.
    derived: PageMemo | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """How messages name it."""
        return f"workspace '{self.workspace}'"
