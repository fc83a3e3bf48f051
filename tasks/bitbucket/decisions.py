"""What to do after one attempt at a page: a pure decision, no I/O, no clock of its own.

`BitbucketClient.fetch` sends a request and describes what happened as an `Outcome`;
`classify` turns that into exactly one of `Done`, `Retry` or `Fail`; `fetch` then acts.
Keeping the decision here means every status, header and network fault can be tested as
a table row without a server (tests/client/test_classify.py).

Usage::

    context = Context("acme", Listing.MEMBERS, api_url, env_hint="BITBUCKET_TOKEN")
    outcome = Outcome(status_code=429, retry_after="7", body=b"...")
    classify(outcome, context, now=clock.now())
    # Retry(delay_hint=7.0, reason='HTTP 429 (…)', rate_limited=True, refresh_auth=False)

    classify(Outcome(fault=Fault.TIMEOUT, detail="ReadTimeout", read_timeout=30.0), context,
             now=clock.now())
    # Retry(delay_hint=None, reason='no response within 30 s (ReadTimeout)', …)

The rules: a 200 with a whole JSON page is `Done`; a 200 without one, 429, 5xx, timeouts,
connection faults and OAuth token faults worth retrying are `Retry` (the wait the server
asks for comes from `Retry-After`, else `X-RateLimit-Reset`; how long to wait and when to
give up is the client's deadline arithmetic); a 401 is retried once with a fresh
token when the auth can fetch one; every other answer is `Fail`, with a message that says
what to fix, and so is a body too large to be a page (the same request would get it again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tasks.bitbucket.messages import (
    body_too_large,
    error_summary,
    oauth_refused,
    seconds,
    status_error,
)
from tasks.bitbucket.retry import reset_seconds, retry_after_seconds
from tasks.vocabulary import ErrorKind, Listing

# (status, body, workspace=, listing=, api_url=, env_hint=) -> (kind, what to fix)
StatusExplainer = Callable[..., tuple[ErrorKind, str]]

__all__ = [
    "Context",
    "Decision",
    "Done",
    "Fail",
    "Fault",
    "Outcome",
    "Retry",
    "StatusExplainer",
    "classify",
]


class Fault(StrEnum):
    """Why no API response came back."""

    TIMEOUT = "timeout"  # connect, read, write or pool timeout
    CONNECTION = "connection"  # refused, reset, bad encoding: any other httpx.RequestError
    TOO_LARGE = "too_large"  # the body passed the client's MAX_BODY_BYTES once decoded
    OAUTH_RETRYABLE = "oauth_retryable"  # token endpoint answered 429/5xx or a broken body
    OAUTH_REFUSED = "oauth_refused"  # token endpoint rejected the client credentials


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced: a response (`status_code`) or a `fault`, never both."""

    attempt: int = 1
    refreshed: bool = False  # an OAuth token was already refreshed after a 401 for this page
    status_code: int | None = None
    whole_page: bool = False  # the body parsed as a JSON object with the API's item list
    body: bytes = field(default=b"", repr=False)  # read for error messages only
    retry_after: str | None = None  # the Retry-After header, as sent
    rate_limit_reset: str | None = None  # X-RateLimit-Reset as sent, when Retry-After is not
    near_limit: str | None = None  # X-RateLimit-NearLimit as sent: for pacing, not here
    fault: Fault | None = None
    detail: str = ""  # the exception's class name, or the OAuth token error's message
    read_timeout: float = 0.0  # the attempt's read timeout, named when it ran out
    token_status: int | None = None  # the OAuth token endpoint's HTTP status, if it answered


@dataclass(frozen=True, slots=True)
class Context:
    """Whose page it is (for messages), whether the auth can fetch a fresh token, and which
    API's words explain a final answer (`explain`: Bitbucket's unless told otherwise)."""

    workspace: str
    listing: Listing
    api_url: str
    env_hint: str
    refreshable: bool = False
    explain: StatusExplainer = status_error
    subject: str = ""  # what is read, as messages name it; default: "workspace '<workspace>'"

    @property
    def named(self) -> str:
        return self.subject or f"workspace '{self.workspace}'"


@dataclass(frozen=True, slots=True)
class Done:
    """The page arrived whole."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again. `delay_hint`: the server's Retry-After, else its X-RateLimit-Reset, in
    seconds (None: back off)."""

    delay_hint: float | None
    reason: str
    rate_limited: bool = False  # giving up on this one is `rate_limited`, not `transient`
    refresh_auth: bool = False  # drop the token and retry at once, without waiting


@dataclass(frozen=True, slots=True)
class Fail:
    """Retrying cannot help: stop reading this workspace."""

    kind: ErrorKind
    message: str


Decision = Done | Retry | Fail


def classify(outcome: Outcome, context: Context, *, now: datetime) -> Decision:
    """Decide what `outcome` means. `now` is only read to date an HTTP-date Retry-After."""
    status = outcome.status_code
    if status is None:
        return _classify_fault(outcome, context)
    if status == 200:
        if outcome.whole_page:
            return Done()
        return Retry(None, "HTTP 200 but the body is not a whole JSON page (truncated?)")
    if status == 401 and context.refreshable and not outcome.refreshed:
        return Retry(
            None, "HTTP 401, fetching a new OAuth token and retrying once", refresh_auth=True
        )
    if status == 429 or status >= 500:
        delay = retry_after_seconds(outcome.retry_after, now)
        if delay is None:
            delay = reset_seconds(outcome.rate_limit_reset, now)
        return Retry(
            delay,
            f"HTTP {status} ({error_summary(outcome.body)[0]})",
            rate_limited=status == 429,
        )
    # Any other answer (400, 401, 403, 404, other 4xx, and any 1xx/2xx/3xx but 200, which
    # a listing never gets) is the caller's problem: the same request gets the same answer.
    kind, message = context.explain(
        status,
        outcome.body,
        workspace=context.workspace,
        listing=context.listing,
        api_url=context.api_url,
        env_hint=context.env_hint,
    )
    return Fail(kind, message)


def _classify_fault(outcome: Outcome, context: Context) -> Decision:
    fault = outcome.fault
    if fault is Fault.TIMEOUT:
        return Retry(None, f"no response within {seconds(outcome.read_timeout)} ({outcome.detail})")
    if fault is Fault.CONNECTION:
        return Retry(None, f"request failed ({outcome.detail})")
    if fault is Fault.TOO_LARGE:
        return Fail(
            ErrorKind.ANOMALY,
            body_too_large(
                outcome.detail, f"{context.listing} of {context.named}", context.api_url
            ),
        )
    if fault is Fault.OAUTH_RETRYABLE:
        return Retry(None, outcome.detail, rate_limited=outcome.token_status == 429)
    if fault is Fault.OAUTH_REFUSED:
        return Fail(
            ErrorKind.AUTH, oauth_refused(outcome.detail, context.workspace, context.env_hint)
        )
    raise ValueError(f"an outcome needs a status code or a fault: {outcome!r}")
