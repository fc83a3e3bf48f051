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


ROWS = [
    # 200: a whole page is done; anything else is retried (kept as evidence by the client).
    ("200 whole page", BEARER, Outcome(status_code=200, whole_page=True, body=PAGE), Done()),
    (
        "200 whole page after a refresh",
        OAUTH,
        Outcome(2, refreshed=True, status_code=200, whole_page=True, body=PAGE),
        Done(),
    ),
    ("200 truncated JSON", BEARER, Outcome(status_code=200, body=TRUNCATED), TRUNCATED_RETRY),
    ("200 HTML body", BEARER, Outcome(status_code=200, body=HTML_502), TRUNCATED_RETRY),
    (
        "200 JSON without values",
        BEARER,
        Outcome(status_code=200, body=b'{"size": 3}'),
        TRUNCATED_RETRY,
    ),
    # 4xx but 429: the caller's problem, said with what to fix.
    (
        "400",
        BEARER,
        Outcome(status_code=400, body=error("Invalid pagelen.")),
        fails(
            ErrorKind.BAD_REQUEST,
            "Bitbucket refused the request for members of workspace 'acme' "
            "(HTTP 400: Invalid pagelen.). Retrying will not help",
        ),
    ),
    (
        "401 bearer: no refresh available",
        BEARER,
        Outcome(status_code=401, body=EXPIRED),
        fails(
            ErrorKind.AUTH,
            "Bitbucket rejected the credentials while reading members of workspace 'acme' "
            "(HTTP 401: Token is invalid, expired, or not supported for this endpoint.)",
            "check BITBUCKET_TOKEN.",
        ),
    ),
    (
        "401 oauth: refresh once, at once",
        OAUTH,
        Outcome(status_code=401, body=EXPIRED),
        Retry(None, "HTTP 401, fetching a new OAuth token and retrying once", refresh_auth=True),
    ),
    (
        "401 oauth after the refresh",
        OAUTH,
        Outcome(2, refreshed=True, status_code=401, body=EXPIRED),
        fails(ErrorKind.AUTH, "(HTTP 401: Token is invalid", f"check {OAUTH_HINT}."),
    ),
    (
        "403 with scopes",
        BEARER,
        Outcome(status_code=403, body=SCOPES),
        fails(
            ErrorKind.PERMISSION,
            "The credentials may not read members of workspace 'acme' (HTTP 403: Your "
            "credentials lack one or more required privilege scopes.)",
            "Granted scopes: read:user:bitbucket; required: read:workspace:bitbucket.",
            "workspace admin",
            "Check BITBUCKET_TOKEN.",
        ),
    ),
    (
        "403 oauth: no refresh for a 403",
        OAUTH,
        Outcome(status_code=403, body=b"<html><body>Forbidden</body></html>"),
        fails(ErrorKind.PERMISSION, "(HTTP 403: an HTML page)."),
    ),
    (
        "404",
        BEARER,
        Outcome(status_code=404, body=error("No workspace with identifier 'acme'.")),
        fails(
            ErrorKind.NOT_FOUND,
            f"No workspace 'acme' at {API} (HTTP 404: No workspace with identifier 'acme'.)",
            "slug",
        ),
    ),
    (
        "418",
        BEARER,
        Outcome(status_code=418, body=b"I'm a teapot"),
        fails(ErrorKind.BAD_REQUEST, "(HTTP 418: a non-JSON body)"),
    ),
    (
        "422",
        BEARER,
        Outcome(status_code=422, body=error("Unprocessable")),
        fails(ErrorKind.BAD_REQUEST, "(HTTP 422: Unprocessable)"),
    ),
    (
        "302: redirects are not followed",
        BEARER,
        Outcome(status_code=302, body=b""),
        fails(ErrorKind.BAD_REQUEST, "(HTTP 302: a non-JSON body)"),
    ),
    # 429: rate limited, waiting as Retry-After asks when it says something usable.
    (
        "429 Retry-After seconds",
        BEARER,
        Outcome(status_code=429, body=RATE, retry_after="7"),
        Retry(7.0, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 Retry-After HTTP-date",
        BEARER,
        Outcome(status_code=429, body=RATE, retry_after="Fri, 27 Nov 2026 12:00:30 GMT"),
        Retry(30.0, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 Retry-After HTTP-date in the past",
        BEARER,
        Outcome(status_code=429, body=RATE, retry_after="Fri, 27 Nov 2026 11:59:00 GMT"),
        Retry(0.0, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 without Retry-After",
        BEARER,
        Outcome(status_code=429, body=RATE),
        Retry(None, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 unreadable Retry-After",
        BEARER,
        Outcome(status_code=429, body=RATE, retry_after="soon"),
        Retry(None, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 after an oauth refresh",
        OAUTH,
        Outcome(3, refreshed=True, status_code=429, body=RATE, retry_after="2"),
        Retry(2.0, RATE_RETRY, rate_limited=True),
    ),
    (
        "429 with X-RateLimit-NearLimit",
        BEARER,
        Outcome(status_code=429, body=RATE, retry_after="1", near_limit="true"),
        Retry(1.0, RATE_RETRY, rate_limited=True),
    ),
    # 5xx: transient, any body.
    (
        "500 JSON",
        BEARER,
        Outcome(status_code=500, body=error("Something broke")),
        Retry(None, "HTTP 500 (Something broke)"),
    ),
    (
        "502 HTML",
        BEARER,
        Outcome(status_code=502, body=HTML_502),
        Retry(None, "HTTP 502 (an HTML page)"),
    ),
    (
        "503 HTML with Retry-After",
        BEARER,
        Outcome(status_code=503, body=b"<!DOCTYPE html><html>down</html>", retry_after="5"),
        Retry(5.0, "HTTP 503 (an HTML page)"),
    ),
    (
        "504 empty body",
        BEARER,
        Outcome(status_code=504, body=b""),
        Retry(None, "HTTP 504 (a non-JSON body)"),
    ),
    ("599", BEARER, Outcome(status_code=599, body=b"?"), Retry(None, "HTTP 599 (a non-JSON body)")),
    # No response at all.
    (
        "connect timeout",
        BEARER,
        Outcome(fault=Fault.TIMEOUT, detail="ConnectTimeout", read_timeout=2.0),
        Retry(None, "no response within 2 s (ConnectTimeout)"),
    ),
    (
        "read timeout",
        BEARER,
        Outcome(fault=Fault.TIMEOUT, detail="ReadTimeout", read_timeout=0.3),
        Retry(None, "no response within 0.3 s (ReadTimeout)"),
    ),
    (
        "connection refused",
        BEARER,
        Outcome(fault=Fault.CONNECTION, detail="ConnectError"),
        Retry(None, "request failed (ConnectError)"),
    ),
    (
        "connection reset",
        BEARER,
        Outcome(fault=Fault.CONNECTION, detail="ReadError"),
        Retry(None, "request failed (ReadError)"),
    ),
    (
        "server hung up mid-response",
        BEARER,
        Outcome(fault=Fault.CONNECTION, detail="RemoteProtocolError"),
        Retry(None, "request failed (RemoteProtocolError)"),
    ),
    # The OAuth token endpoint, before any API request.
    (
        "oauth token endpoint 503",
        OAUTH,
        Outcome(
            fault=Fault.OAUTH_RETRYABLE,
            detail=f"the OAuth token URL {TOKEN_URL} answered HTTP 503",
            token_status=503,
        ),
        Retry(None, f"the OAuth token URL {TOKEN_URL} answered HTTP 503"),
    ),
    (
        "oauth token endpoint 429",
        OAUTH,
        Outcome(
            fault=Fault.OAUTH_RETRYABLE,
            detail=f"the OAuth token URL {TOKEN_URL} answered HTTP 429",
            token_status=429,
        ),
        Retry(None, f"the OAuth token URL {TOKEN_URL} answered HTTP 429", rate_limited=True),
    ),
    (
        "oauth token response without a token",
        OAUTH,
        Outcome(fault=Fault.OAUTH_RETRYABLE, detail="no usable access_token", token_status=200),
        Retry(None, "no usable access_token"),
    ),
    (
        "oauth token refused",
        OAUTH,
        Outcome(
            fault=Fault.OAUTH_REFUSED,
            detail=f"the OAuth token URL {TOKEN_URL} answered HTTP 401 (invalid_client)",
            token_status=401,
        ),
        fails(
            ErrorKind.AUTH,
            "Could not get an OAuth token to read workspace 'acme': the OAuth token URL "
            f"{TOKEN_URL} answered HTTP 401 (invalid_client). Check {OAUTH_HINT} "
            "(and BITBUCKET_OAUTH_TOKEN_URL if set).",
        ),
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
