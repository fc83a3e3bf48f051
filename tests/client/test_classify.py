"""`classify` as a table: every status, header and network fault the client can meet.

No HTTP here: each row builds the `Outcome` the send step would produce and asserts the
decision. The emulator tests (test_faults.py, test_auth.py) show the client acting on them.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

from tasks.bitbucket.decisions import Context, Done, Fail, Fault, Outcome, Retry, classify
from tasks.vocabulary import ErrorKind, Listing

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
API = "https://api.bitbucket.org/2.0"
TOKEN_URL = "https://bitbucket.org/site/oauth2/access_token"
OAUTH_HINT = "BITBUCKET_OAUTH_CLIENT_ID and BITBUCKET_OAUTH_CLIENT_SECRET"
BEARER = Context("acme", Listing.MEMBERS, API, "BITBUCKET_TOKEN")
OAUTH = Context("acme", Listing.MEMBERS, API, OAUTH_HINT, refreshable=True)

PAGE = b'{"pagelen": 100, "size": 1, "values": [{"user": {"account_id": "a1"}}]}'
TRUNCATED = PAGE[: len(PAGE) // 2]
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
EXPIRED = (
    b'{"type": "error", "error": {"message": '
    b'"Token is invalid, expired, or not supported for this endpoint."}}'
)
SCOPES = (
    b'{"type": "error", "error": {"message": "Your credentials lack one or more required '
    b'privilege scopes.", "detail": {"granted": ["read:user:bitbucket"], '
    b'"required": ["read:workspace:bitbucket"]}}}'
)
RATE = b'{"type": "error", "error": {"message": "Rate limit for this resource has been exceeded"}}'
TRUNCATED_RETRY = Retry(None, "HTTP 200 but the body is not a whole JSON page (truncated?)")
RATE_RETRY = "HTTP 429 (Rate limit for this resource has been exceeded)"


def error(message: str) -> bytes:
    return b'{"type": "error", "error": {"message": "%s"}}' % message.encode()


def fails(kind: ErrorKind, *fragments: str) -> tuple[ErrorKind, tuple[str, ...]]:
    """A Fail row: its kind, and what its message must say."""
    return kind, fragments


# Row builders, one per kind of answer: (id, context, outcome, expected decision or fails()).
# `**outcome` passes what else the attempt had (attempt=2, refreshed=True, ...).


def answered(name, status, body, expected, context=BEARER, **outcome):
    return name, context, Outcome(status_code=status, body=body, **outcome), expected


def refused(name, status, body, kind, *fragments, context=BEARER, **outcome):
    """A 4xx other than 429: a Fail whose message says each fragment."""
    return answered(name, status, body, fails(kind, *fragments), context, **outcome)


def rate_limited(name, retry_after, delay, context=BEARER, **outcome):
    """A 429: retried after Retry-After (`delay` seconds) when it says something usable."""
    expected = Retry(delay, RATE_RETRY, rate_limited=True)
    return answered(name, 429, RATE, expected, context, retry_after=retry_after, **outcome)


def transient(name, status, body, why, delay=None, **outcome):
    """A 5xx: retried whatever the body; `why` is how the reason names the body."""
    return answered(name, status, body, Retry(delay, f"HTTP {status} ({why})"), **outcome)


def unanswered(name, fault, detail, expected, context=BEARER, **outcome):
    """No API response (a network fault, or the OAuth token endpoint's); `expected` as a
    reason alone: retried without a delay."""
    if isinstance(expected, str):
        expected = Retry(None, expected)
    return name, context, Outcome(fault=fault, detail=detail, **outcome), expected


def token_answer(status: int) -> str:
    return f"the OAuth token URL {TOKEN_URL} answered HTTP {status}"


ROWS = [
    # 200: a whole page is done; anything else is retried (kept as evidence by the client).
    answered("200 whole page", 200, PAGE, Done(), whole_page=True),
    answered(
        "200 whole page after a refresh",
        200,
        PAGE,
        Done(),
        OAUTH,
        attempt=2,
        refreshed=True,
        whole_page=True,
    ),
    answered("200 truncated JSON", 200, TRUNCATED, TRUNCATED_RETRY),
    answered("200 HTML body", 200, HTML_502, TRUNCATED_RETRY),
    answered("200 JSON without values", 200, b'{"size": 3}', TRUNCATED_RETRY),
    # 4xx but 429: the caller's problem, said with what to fix.
    refused(
        "400",
        400,
        error("Invalid pagelen."),
        ErrorKind.BAD_REQUEST,
        "Bitbucket refused the request for members of workspace 'acme' "
        "(HTTP 400: Invalid pagelen.). Retrying will not help",
    ),
    refused(
        "401 bearer: no refresh available",
        401,
        EXPIRED,
        ErrorKind.AUTH,
        "Bitbucket rejected the credentials while reading members of workspace 'acme' "
        "(HTTP 401: Token is invalid, expired, or not supported for this endpoint.)",
        "check BITBUCKET_TOKEN.",
    ),
    answered(
        "401 oauth: refresh once, at once",
        401,
        EXPIRED,
        Retry(None, "HTTP 401, fetching a new OAuth token and retrying once", refresh_auth=True),
        OAUTH,
    ),
    refused(
        "401 oauth after the refresh",
        401,
        EXPIRED,
        ErrorKind.AUTH,
        "(HTTP 401: Token is invalid",
        f"check {OAUTH_HINT}.",
        context=OAUTH,
        attempt=2,
        refreshed=True,
    ),
    refused(
        "403 with scopes",
        403,
        SCOPES,
        ErrorKind.PERMISSION,
        "The credentials may not read members of workspace 'acme' (HTTP 403: Your "
        "credentials lack one or more required privilege scopes.)",
        "Granted scopes: read:user:bitbucket; required: read:workspace:bitbucket.",
        "workspace admin",
        "Check BITBUCKET_TOKEN.",
    ),
    refused(
        "403 oauth: no refresh for a 403",
        403,
        b"<html><body>Forbidden</body></html>",
        ErrorKind.PERMISSION,
        "(HTTP 403: an HTML page).",
        context=OAUTH,
    ),
    refused(
        "404",
        404,
        error("No workspace with identifier 'acme'."),
        ErrorKind.NOT_FOUND,
        f"No workspace 'acme' at {API} (HTTP 404: No workspace with identifier 'acme'.)",
        "slug",
    ),
    refused("418", 418, b"I'm a teapot", ErrorKind.BAD_REQUEST, "(HTTP 418: a non-JSON body)"),
    refused("422", 422, error("Unprocessable"), ErrorKind.BAD_REQUEST, "(HTTP 422: Unprocessable)"),
    refused(
        "302: redirects are not followed",
        302,
        b"",
        ErrorKind.BAD_REQUEST,
        "(HTTP 302: a non-JSON body)",
    ),
    # 429: rate limited, waiting as Retry-After asks when it says something usable.
    rate_limited("429 Retry-After seconds", "7", 7.0),
    rate_limited("429 Retry-After HTTP-date", "Fri, 27 Nov 2026 12:00:30 GMT", 30.0),
    rate_limited("429 Retry-After HTTP-date in the past", "Fri, 27 Nov 2026 11:59:00 GMT", 0.0),
    rate_limited("429 without Retry-After", None, None),
    rate_limited("429 unreadable Retry-After", "soon", None),
    rate_limited("429 after an oauth refresh", "2", 2.0, OAUTH, attempt=3, refreshed=True),
    rate_limited("429 with X-RateLimit-NearLimit", "1", 1.0, near_limit="true"),
    # 5xx: transient, any body.
    transient("500 JSON", 500, error("Something broke"), "Something broke"),
    transient("502 HTML", 502, HTML_502, "an HTML page"),
    transient(
        "503 HTML with Retry-After",
        503,
        b"<!DOCTYPE html><html>down</html>",
        "an HTML page",
        5.0,
        retry_after="5",
    ),
    transient("504 empty body", 504, b"", "a non-JSON body"),
    transient("599", 599, b"?", "a non-JSON body"),
    # No response at all.
    unanswered(
        "connect timeout",
        Fault.TIMEOUT,
        "ConnectTimeout",
        "no response within 2 s (ConnectTimeout)",
        read_timeout=2.0,
    ),
    unanswered(
        "read timeout",
        Fault.TIMEOUT,
        "ReadTimeout",
        "no response within 0.3 s (ReadTimeout)",
        read_timeout=0.3,
    ),
    unanswered(
        "connection refused", Fault.CONNECTION, "ConnectError", "request failed (ConnectError)"
    ),
    unanswered("connection reset", Fault.CONNECTION, "ReadError", "request failed (ReadError)"),
    unanswered(
        "server hung up mid-response",
        Fault.CONNECTION,
        "RemoteProtocolError",
        "request failed (RemoteProtocolError)",
    ),
    unanswered(
        "body too large to be a page",
        Fault.TOO_LARGE,
        "body over 8,388,608 bytes, decoded",
        fails(
            ErrorKind.ANOMALY,
            f"A page of members of workspace 'acme' from {API} was too large (body over "
            "8,388,608 bytes, decoded).",
            "Nothing more was read.",
        ),
    ),
    # The OAuth token endpoint, before any API request.
    unanswered(
        "oauth token endpoint 503",
        Fault.OAUTH_RETRYABLE,
        token_answer(503),
        token_answer(503),
        OAUTH,
        token_status=503,
    ),
    unanswered(
        "oauth token endpoint 429",
        Fault.OAUTH_RETRYABLE,
        token_answer(429),
        Retry(None, token_answer(429), rate_limited=True),
        OAUTH,
        token_status=429,
    ),
    unanswered(
        "oauth token response without a token",
        Fault.OAUTH_RETRYABLE,
        "no usable access_token",
        "no usable access_token",
        OAUTH,
        token_status=200,
    ),
    unanswered(
        "oauth token refused",
        Fault.OAUTH_REFUSED,
        f"{token_answer(401)} (invalid_client)",
        fails(
            ErrorKind.AUTH,
            "Could not get an OAuth token to read workspace 'acme': the OAuth token URL "
            f"{TOKEN_URL} answered HTTP 401 (invalid_client). Check {OAUTH_HINT} "
            "(and BITBUCKET_OAUTH_TOKEN_URL if set).",
        ),
        OAUTH,
        token_status=401,
    ),
]


@pytest.mark.parametrize(
    ("context", "outcome", "expected"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_classify(context, outcome, expected):
    decision = classify(outcome, context, now=NOW)
    if isinstance(expected, tuple):
        kind, fragments = expected
        assert isinstance(decision, Fail), decision
        assert decision.kind is kind
        for fragment in fragments:
            assert fragment in decision.message
    else:
        assert type(decision) is type(expected)
        assert decision == expected


def test_fail_messages_name_the_listing():
    context = Context("acme", Listing.PERMISSIONS, API, "BITBUCKET_TOKEN")
    decision = classify(Outcome(status_code=401, body=EXPIRED), context, now=NOW)
    assert isinstance(decision, Fail)
    assert "while reading permissions of workspace 'acme'" in decision.message


def test_an_outcome_needs_a_status_or_a_fault():
    with pytest.raises(ValueError, match="status code or a fault"):
        classify(Outcome(), BEARER, now=NOW)


def test_outcomes_and_decisions_are_frozen():
    with pytest.raises(FrozenInstanceError):
        Outcome(status_code=200).status_code = 500  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Retry(None, "x").delay_hint = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("api_url", "hinted"), [(API, False), ("http://127.0.0.1:8765", True)])
def test_a_404_from_an_api_url_without_2_0_points_at_the_url(api_url, hinted):
    """Without /2.0 every workspace is 'missing': the slug is not what to check first."""
    from tasks.bitbucket.messages import status_error

    kind, text = status_error(
        404, error("Resource not found"), workspace="acme", listing=Listing.MEMBERS,
        api_url=api_url, env_hint="BITBUCKET_TOKEN",
    )  # fmt: skip
    assert kind is ErrorKind.NOT_FOUND
    assert ("check BITBUCKET_API_URL: it usually ends in /2.0" in text) is hinted


def test_a_body_too_large_names_what_was_read():
    context = Context(
        "org-1", Listing.DIRECTORY, API, "ATLASSIAN_ADMIN_API_KEY", subject="organization 'org-1'"
    )
    outcome = Outcome(fault=Fault.TOO_LARGE, detail="body over 8,388,608 bytes, decoded")
    decision = classify(outcome, context, now=NOW)
    assert isinstance(decision, Fail) and decision.kind is ErrorKind.ANOMALY
    assert (
        f"A page of directory of organization 'org-1' from {API} was too large" in decision.message
    )
