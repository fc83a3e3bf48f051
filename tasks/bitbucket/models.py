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

from tasks import page_encoding
from tasks.bitbucket.spill import BodySpill, SpilledBody
from tasks.canonical import sha256_hex
from tasks.vocabulary import ErrorKind, Listing, RunStatus

if TYPE_CHECKING:
    from tasks.normalise import PageMemo

__all__ = ["ListingResult", "RawPage", "WorkspaceExtract"]


class RawPage:
    """One HTTP response exactly as received (failed attempts included, in order).

    `url` never contains credentials; `body` is the response body as received, after HTTP
    content decoding (gzip, deflate) and at most `client.MAX_BODY_BYTES`. The client gives
    it as a `SpilledBody` (kept on disk until the store, `spill.py`); `body` reads it back.
    Immutable. Equal when their metadata and sha256 are: a page given a sha256 (not
    hashed here, `sha256_of_body` False) may claim another's, and the store checks it.
    """

    __slots__ = ("_held", "fetched_at", "listing", "sha256", "sha256_of_body", "status_code", "url")

    listing: Listing
    url: str
    status_code: int
    fetched_at: datetime  # timezone-aware UTC
    sha256: str
    # True when `sha256` was computed here from the body as it arrived: the evidence store
    # then need not hash the body again before trusting the name (an extract's pages are
    # hashed once; one read back from disk checks itself, `SpilledBody.read`). A page given
    # its sha256 (the spool, a caller) is checked.
    sha256_of_body: bool

    def __init__(
        self,
        listing: Listing,
        url: str,
        status_code: int,
        fetched_at: datetime,
        body: bytes | SpilledBody,
        sha256: str = "",
    ) -> None:
        spilled = isinstance(body, SpilledBody)
        of_body = not sha256
        if not sha256:
            sha256 = sha256_hex(body.read() if spilled else body)
        for name, value in (
            ("listing", listing),
            ("url", url),
            ("status_code", status_code),
            ("fetched_at", fetched_at),
            ("sha256", sha256),
            ("sha256_of_body", of_body),
            ("_held", body),
        ):
            object.__setattr__(self, name, value)

    @property
    def body(self) -> bytes:
        held = self._held
        return held.read() if isinstance(held, SpilledBody) else held

    def compressed_body(self) -> bytes:
        """The body compressed as the store keeps a whole body (`tasks.page_encoding`): read
        back from the spill as compressed on arrival, or compressed now."""
        held = self._held
        if isinstance(held, SpilledBody):
            return held.read_compressed()
        return page_encoding.compress(held)

    @property
    def body_size(self) -> int:
        """len(body), without reading it back."""
        held = self._held
        return held.size if isinstance(held, SpilledBody) else len(held)

    @property
    def body_on_disk(self) -> bool:
        """Whether `body` is read back from a temporary file (`spill.py`)."""
        return isinstance(self._held, SpilledBody)

    def kept_in(self, spill: BodySpill) -> RawPage:
        """The same page, its body kept in `spill` (in memory still, should the file fail)."""
        if self.body_on_disk:
            return self
        kept = object.__new__(RawPage)
        for name in RawPage.__slots__:
            object.__setattr__(kept, name, getattr(self, name))
        object.__setattr__(kept, "_held", spill.keep(self._held, self.sha256))
        return kept

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RawPage is immutable; cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RawPage is immutable; cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawPage):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"RawPage(listing={self.listing!r}, url={self.url!r}, status_code={self.status_code}, "
            f"fetched_at={self.fetched_at!r}, sha256={self.sha256!r})"
        )

    def __reduce__(self) -> tuple:
        # Pickled with its bytes: a spilled body's file is open in this process only.
        args = (self.listing, self.url, self.status_code, self.fetched_at, self.body, self.sha256)
        return (RawPage, args)

    def _key(self) -> tuple:
        return (self.listing, self.url, self.status_code, self.fetched_at, self.sha256)


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
