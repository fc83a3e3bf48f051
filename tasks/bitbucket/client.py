"""One HTTP client per listing read: pacing, retries, raw-page recording.

`BitbucketClient.fetch` returns a parsed page or raises a `BitbucketError`. Each attempt
goes in three steps: send it and describe what happened as an `Outcome`; let the pure
`classify` (tasks/bitbucket/decisions.py) decide `Done`, `Retry` or `Fail`; act on that:

- `Done`: return the page;
- `Retry` (429, 5xx, connection errors, timeouts, a 200 whose body is not a whole JSON
  page): wait as `Retry-After` (seconds or HTTP-date) or `X-RateLimit-Reset` (ISO-8601
  time) asks (a wait longer than `retry_after_cap` gives up at once, saying when to try
  again), else exponential backoff with full jitter, within
  `max_attempts` and one deadline per page (`settings.retry_deadline`, pacing included);
  past them, raise `RetryBudgetExhausted` naming the page, the attempts and the last
  answer. After a 401 with OAuth: drop the token and retry once, now;
- `Fail` (400/401/403/404 and other 4xx, a refused OAuth token): raise `ApiStatusError`.

Every wait has a ceiling: connect and read timeouts, a whole-response deadline
(`settings.response_deadline`, enforced by cutting the connection: tasks/bitbucket/inflight.py)
and the page deadline. A stop (SIGTERM, SIGINT, cancellation: tasks/signals.py) cuts the
request in flight, ends any wait, and raises `CollectionStopped` before the next attempt.

Every response, failed attempts and partly received bodies included, is appended to `pages`
as a `RawPage`. `stalled_since` is when the page that is failing now was first tried (None
after a success); a caller retrying the workspace passes `stall_until` so the stall's budget
carries over into the next attempt.

A client reads one listing at a time: `pages` and the counters are its own. Listings read at
once each get a client (tasks/bitbucket/extract.py); what they share (the pacer, the auth's
OAuth token, the `stop` flag) is thread-safe.

The same client reads the Atlassian organization directory: `api` names what differs (how
the subject is named in messages, the page envelope, the words for a final answer), and
`BITBUCKET` is the default.

Usage::

    with BitbucketClient(settings, "acme") as bb:
        fetched = bb.fetch(url, Listing.MEMBERS)
        fetched.document["values"], bb.pages, bb.request_count
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

import httpx
import orjson

from tasks.bitbucket.clock import SYSTEM_CLOCK, Clock
from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.decisions import (
    Context,
    Done,
    Fail,
    Fault,
    Outcome,
    Retry,
    StatusExplainer,
    classify,
)
from tasks.bitbucket.exceptions import (
    ApiStatusError,
    CollectionStopped,
    OAuthTokenError,
    RetryBudgetExhausted,
)
from tasks.bitbucket.inflight import InFlight
from tasks.bitbucket.messages import seconds, status_error
from tasks.bitbucket.models import RawPage
from tasks.bitbucket.ratelimit import RequestPacer, pacer_for
from tasks.bitbucket.retry import Deadline, backoff_delay
from tasks.bitbucket.secret import mask_secrets
from tasks.bitbucket.spill import BodySpill
from tasks.bitbucket.tls import tls_context
from tasks.signals import STOP, StopFlag
from tasks.version import __version__
from tasks.vocabulary import ErrorKind, Listing

__all__ = ["BITBUCKET", "Api", "BitbucketClient", "FetchedPage", "parse_envelope", "public_url"]

logger = logging.getLogger("bb2sv.bitbucket")

MIN_ATTEMPT_TIMEOUT = 0.05
MAX_BODY_BYTES = 8 * 2**20  # one response, decoded: ~80 times a page of 100 members
# Query parameters that can carry a credential (Bitbucket accepts ?access_token=).
_SECRET_PARAMS = ("access_token", "token", "client_secret")


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """A page that arrived whole: the raw response kept as evidence, and its parsed body."""

    page: RawPage  # its body in memory: the extract's copy of it waits on disk (spill.py)
    document: dict
    # `document` was parsed from `page.body` itself: no credential was masked in the body.
    as_received: bool = False

    @property
    def document_of_body(self) -> dict | None:
        """`document` when it is the parse of `page.body` itself, else None."""
        return self.document if self.as_received else None


def public_url(url: httpx.URL) -> str:
    """The URL as stored in evidence: no userinfo, no credential-bearing query parameters."""
    url = url.copy_with(username=None, password=None) if url.userinfo else url
    for name in _SECRET_PARAMS:
        if name in url.params:
            url = url.copy_remove_param(name)
    return str(url)


def parse_envelope(body: bytes, items: str = "values") -> dict | None:
    """The page document, or None when the body is not a whole JSON page (truncated, HTML):
    a JSON object whose `items` (Bitbucket's `values`) is a list."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(document, dict) and isinstance(document.get(items), list):
        return document
    return None


@dataclass(frozen=True, slots=True)
class Api:
    """What differs between the APIs this client reads.

    `subject` names what is read in messages (formatted with the client's `workspace`),
    `parse` returns the page document of a body (None when it is not a whole page; orjson's
    parse as it is, which the check for keys given twice counts against), and
    `explain` words an answer that retrying cannot fix (see `decisions.Context`).
    """

    subject: str
    parse: Callable[[bytes], dict | None]
    explain: StatusExplainer


BITBUCKET = Api("workspace '{}'", parse_envelope, status_error)


class BitbucketClient:
    def __init__(
        self,
        settings: BitbucketSettings,
        workspace: str,
        *,
        http: httpx.Client | None = None,
        clock: Clock = SYSTEM_CLOCK,
        pacer: RequestPacer | None = None,
        rng: random.Random | None = None,
        api: Api = BITBUCKET,
        stall_until: float | None = None,
        stop: StopFlag = STOP,
    ) -> None:
        self.settings = settings
        self.workspace = workspace
        self.api = api
        self.subject = api.subject.format(workspace)
        self._clock = clock
        self._pacer = pacer or pacer_for(settings)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=settings.timeout,
            # HTTP/1.1 keep-alive: a listing's pages are fetched one after another on one
            # connection (its `next` links are opaque, so they cannot be fetched at once).
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            headers={"User-Agent": f"bb2sv/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
            verify=tls_context(),
        )
        # `stop` ends waits and starts no new attempt. Only the process-wide STOP also cuts the
        # request in flight: a scoped stop lets it finish, so its response is kept.
        self._stop = stop
        self._inflight = InFlight()
        # Until a page succeeds, an earlier attempt's stall (clock.monotonic time) still counts.
        self._stall_until = stall_until
        self.stalled_since: float | None = None
        self.pages: list[RawPage] = []
        self._spill = BodySpill()  # the pages' bodies, on disk (made at the first page)
        self.request_count = 0  # API requests sent, retries included; OAuth token requests not
        self.successful_pages = 0
        self.pages_masked = 0  # responses that contained the credentials (`mask_secrets`)

    def __enter__(self) -> BitbucketClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def fetch(self, url: str, listing: Listing, page: int = 1) -> FetchedPage:
        """GET page `page` (its number, for messages) of a listing, retrying what can be
        retried. Raises a BitbucketError otherwise.

        Each attempt is sent and described as an `Outcome`; `classify` decides; this acts.
        """
        auth = self.settings.auth
        context = Context(
            self.workspace,
            listing,
            self.settings.api_url,
            auth.env_hint,
            auth.refreshable,
            self.api.explain,
            self.subject,
        )
        where = f"{listing} of {self.subject} at page {page}"
        deadline = self._page_deadline()
        # Until this page arrives it is the one that stalls the read, whatever ends the
        # attempt (a failed answer, the deadline spent waiting for a slot, a stop).
        self.stalled_since = self._clock.monotonic()
        attempt = 0
        refreshed = False
        while True:
            self._check_stop(where)
            self._wait_for_slot(where, deadline)
            self._check_stop(where)
            attempt += 1
            response_limit_s, timeout = self._attempt_limits(where, attempt, deadline)
            request = self._http.build_request(
                "GET", url, timeout=timeout, extensions={"trace": self._inflight.trace}
            )
            sent = Outcome(attempt, refreshed, read_timeout=timeout.read)
            slowdowns = self._pacer.slowdowns
            outcome, fetched = self._attempt(request, listing, sent, response_limit_s)
            self._note_near_limit(outcome.near_limit, slowdowns)
            decision = classify(outcome, context, now=self._clock.now())
            if isinstance(decision, Done):
                assert fetched is not None
                self.successful_pages += 1
                self.stalled_since = self._stall_until = None
                return fetched
            self._check_stop(where)  # a stop cuts the attempt: that is no fault to retry
            if isinstance(decision, Fail):
                raise ApiStatusError(decision.message, kind=decision.kind)
            if decision.refresh_auth:
                logger.warning("%s %s: %s", self.workspace, listing, decision.reason)
                auth.invalidate(request)
                refreshed = True
            else:
                self._back_off(listing, page, outcome.attempt, decision, deadline)

    def _page_deadline(self) -> Deadline:
        allowed_s = self.settings.retry_deadline
        if self._stall_until is not None:  # an earlier attempt of the workspace stalled
            allowed_s = min(allowed_s, self._stall_until - self._clock.monotonic())
        return Deadline(self._clock, max(0.0, allowed_s))

    def _check_stop(self, where: str) -> None:
        # The process-wide stop first: a scoped flag learns of it through a hook, a moment later.
        stop = STOP if STOP.requested else self._stop
        if stop.requested:
            raise CollectionStopped(
                f"stopped by {stop.reason} while reading {where} ({self.successful_pages} "
                "page(s) read); the attempt is kept as a failed run with every response "
                "received. Run the collection again.",
                reason=stop.reason,
            )

    def _attempt(
        self, request: httpx.Request, listing: Listing, sent: Outcome, response_limit_s: float
    ) -> tuple[Outcome, FetchedPage | None]:
        """Send `request` and complete `sent` (attempt, refresh, timeout) with what happened,
        cutting the connection if the whole response takes longer than `response_limit_s`.

        Any response is kept as evidence, even a partly received one; the `FetchedPage` is
        there only for a whole page.
        """
        inflight = self._inflight
        with inflight.watch(response_limit_s):
            try:
                response = self._send(request)
            except OAuthTokenError as exc:
                fault = Fault.OAUTH_RETRYABLE if exc.retryable else Fault.OAUTH_REFUSED
                return replace(
                    sent, fault=fault, detail=exc.message, token_status=exc.status_code
                ), None
            except httpx.RequestError as exc:  # timeouts, refused, reset, cut, bad encoding
                return self._network_fault(sent, exc, response_limit_s), None
            try:
                inflight.adopt(response.extensions.get("network_stream"))
                body, broken = _read_body(response)
            finally:
                response.close()
        masked = self.pages_masked
        page = self._record(response, listing, body)
        if broken is not None:
            return self._network_fault(sent, broken, response_limit_s), None
        document = self.api.parse(body)
        outcome = replace(
            sent,
            status_code=response.status_code,
            whole_page=document is not None,
            body=body,
            retry_after=response.headers.get("Retry-After"),
            rate_limit_reset=response.headers.get("X-RateLimit-Reset"),
            near_limit=response.headers.get("X-RateLimit-NearLimit"),
        )
        if document is None:
            return outcome, None
        return outcome, FetchedPage(page, document, as_received=self.pages_masked == masked)

    def _network_fault(self, sent: Outcome, exc: Exception, response_limit_s: float) -> Outcome:
        if self._inflight.cut_reason == "deadline":
            # httpx's read timeout is per chunk; this one is for the whole response.
            return replace(
                sent,
                fault=Fault.TIMEOUT,
                detail="whole-response deadline",
                read_timeout=response_limit_s,
            )
        if isinstance(exc, BodyTooLarge):
            return replace(sent, fault=Fault.TOO_LARGE, detail=str(exc))
        fault = Fault.TIMEOUT if isinstance(exc, httpx.TimeoutException) else Fault.CONNECTION
        return replace(sent, fault=fault, detail=type(exc).__name__)

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._http.send(request, auth=self.settings.auth, stream=True)
        finally:
            # The auth flow sets Authorization just before the API request goes out; without
            # it only the OAuth token request was attempted, and that one is not counted.
            if "Authorization" in request.headers:
                self.request_count += 1

    def _back_off(
        self, listing: Listing, page: int, attempt: int, retry: Retry, deadline: Deadline
    ) -> None:
        settings = self.settings
        where = f"{listing} of {self.subject} at page {page}"
        if retry.delay_hint is not None:
            delay, why = retry.delay_hint, "as the server asks"
        else:
            delay = backoff_delay(
                attempt, base=settings.backoff_base, cap=settings.backoff_cap, rng=self._rng
            )
            why = "backoff"
        kind = ErrorKind.RATE_LIMITED if retry.rate_limited else ErrorKind.TRANSIENT
        gave_up = f"gave up reading {where} after {attempt} attempt(s): last {retry.reason}"
        remaining = deadline.remaining()
        # The cap first: its message says when the server will answer again, and raising
        # only the deadline would run into it next.
        if retry.delay_hint is not None and delay > settings.retry_after_cap:
            raise RetryBudgetExhausted(
                f"{gave_up}; the server asks to wait {seconds(delay)}, longer than the "
                f"{seconds(settings.retry_after_cap)} cap (BITBUCKET_RETRY_AFTER_CAP). "
                f"Run again in {max(1, math.ceil(delay / 60))} minute(s), or raise the cap.",
                kind=kind,
            )
        if delay + MIN_ATTEMPT_TIMEOUT >= remaining:  # no time left for the attempt after
            raise RetryBudgetExhausted(
                f"{gave_up}; waiting {seconds(delay)} ({why}) would pass the "
                f"{seconds(settings.retry_deadline)} retry deadline (BITBUCKET_RETRY_DEADLINE). "
                "Run again later or raise the deadline.",
                kind=kind,
            )
        if attempt >= settings.max_attempts:
            raise RetryBudgetExhausted(
                f"{gave_up}; that was the last of {settings.max_attempts} attempts "
                "(BITBUCKET_MAX_ATTEMPTS). Run again later; if it persists, check the API's "
                "status page and its URL setting.",
                kind=kind,
            )
        logger.warning(
            "%s %s: %s; retry %d in %.3g s (%s, page %d, %.3g s of deadline left)",
            self.workspace,
            listing,
            retry.reason,
            attempt,
            delay,
            why,
            page,
            remaining,
        )
        self._clock.sleep(delay)

    def _wait_for_slot(self, where: str, deadline: Deadline) -> None:
        remaining = deadline.remaining()
        wait = self._pacer.reserve(self._clock.monotonic(), within=remaining, stop=self._stop)
        if wait >= remaining:
            self._check_stop(where)  # a shared budget gives up waiting when a stop comes
            when = f"only in {seconds(wait)}" if wait < float("inf") else "no slot"
            raise RetryBudgetExhausted(
                f"stopped reading {where}: the client-side budget of "
                f"{self.settings.max_requests_per_hour} requests per hour "
                f"(BITBUCKET_MAX_REQUESTS_PER_HOUR) frees {when} within the "
                f"{seconds(remaining)} left of the retry deadline. Run again later.",
                kind=ErrorKind.RATE_LIMITED,
            )
        if wait > 0:
            logger.debug("%s: pacing, waiting %.3g s", where, wait)
            self._clock.sleep(wait)

    def _attempt_limits(
        self, where: str, attempt: int, deadline: Deadline
    ) -> tuple[float, httpx.Timeout]:
        """(whole-response seconds, httpx timeouts): no attempt may outlive the page deadline."""
        remaining = deadline.remaining()
        if remaining < MIN_ATTEMPT_TIMEOUT:
            raise RetryBudgetExhausted(
                f"the {seconds(self.settings.retry_deadline)} retry deadline "
                f"(BITBUCKET_RETRY_DEADLINE) ran out before attempt {attempt} at {where}. "
                "Run again later or raise the deadline.",
                kind=ErrorKind.TRANSIENT,
            )
        read = min(self.settings.read_timeout, remaining)
        connect = min(self.settings.connect_timeout, remaining)
        return min(self.settings.response_deadline, remaining), httpx.Timeout(read, connect=connect)

    def _record(self, response: httpx.Response, listing: Listing, body: bytes) -> RawPage:
        """Keep the response as a page of the extract, its body on disk; the page returned
        holds the body in memory, for the checks and normalising done as it arrives."""
        kept = mask_secrets(body, self.settings.auth.secret_values())
        if kept is not body:
            self.pages_masked += 1
            logger.warning(
                "%s: the response to %s contained the credentials; they are masked in the page "
                "kept, so it is not as received and the read cannot be complete",
                self.subject,
                public_url(response.request.url),
            )
        page = RawPage(
            listing=listing,
            url=public_url(response.request.url),
            status_code=response.status_code,
            fetched_at=self._clock.now(),
            body=kept,
        )
        self.pages.append(page.kept_in(self._spill))  # hashed as it arrived; then on disk
        return page

    def _note_near_limit(self, near: str | None, slowdowns_when_sent: int) -> None:
        if near is None:
            return  # only access-token callers get these headers: keep the current pace
        if near.strip().lower() == "true":
            if not self._pacer.slowed:
                interval = 3600.0 / self.settings.max_requests_per_hour
                logger.warning(
                    "%s: the API reports the rate limit is near; spacing requests %.3g s apart",
                    self.workspace,
                    interval,
                )
                self._pacer.slow_down(interval)
        elif self._pacer.slowed:
            self._pacer.relax(slowdowns_when_sent)


class BodyTooLarge(httpx.HTTPError):
    """The body passed MAX_BODY_BYTES once decoded: read no further."""


def _read_body(response: httpx.Response) -> tuple[bytes, httpx.HTTPError | None]:
    """The (decoded) body as far as it arrived, at most MAX_BODY_BYTES, and the error that
    cut it short, if any. A page of 100 members is ~100 KB; a compressed body that inflates
    past the limit (a gzip bomb) is cut there instead of filling memory."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                body = b"".join(chunks)[:MAX_BODY_BYTES]
                return body, BodyTooLarge(f"body over {MAX_BODY_BYTES:,} bytes, decoded")
    except httpx.HTTPError as exc:  # cut, reset, timed out or undecodable mid-body
        return b"".join(chunks), exc
    return b"".join(chunks), None
