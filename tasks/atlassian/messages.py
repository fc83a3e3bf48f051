"""The directory's page envelope and the messages for answers that retrying cannot fix.

Usage::

    parse_directory_page(b'{"data": [], "links": {"next": null}}')   # the document
    parse_directory_page(b'{"data": [')                              # None: not whole
    kind, text = explain_status(401, body, workspace="org-1", listing=Listing.DIRECTORY,
                                api_url="https://api.atlassian.com", env_hint=ADMIN_API_KEY)
    DIRECTORY_API      # the `Api` the Bitbucket client reads the directory with
"""

from __future__ import annotations

from functools import partial

import orjson

from tasks.bitbucket.client import Api, parse_envelope
from tasks.bitbucket.messages import error_summary
from tasks.vocabulary import ErrorKind, Listing

__all__ = ["DIRECTORY_API", "explain_status", "parse_directory_page"]

# The page is `{"data": [...], "links": {...}}`; None when the body is not a whole page.
parse_directory_page = partial(parse_envelope, items="data")

SCOPE = "read:directories:admin"


def explain_status(
    status: int, body: bytes, *, workspace: str, listing: Listing, api_url: str, env_hint: str
) -> tuple[ErrorKind, str]:
    """(kind, message) for an Admin API answer that retrying cannot fix (4xx but 429).

    `workspace` is the organization id (the client's subject).
    """
    message = _message(body)
    where = f"the {listing} of organization '{workspace}' at {api_url}"
    if status == 401:
        return ErrorKind.AUTH, (
            f"The Atlassian Admin API rejected the key while reading {where} (HTTP 401: "
            f"{message}). Organization API keys expire within a year and can be revoked: "
            f"create a new one at admin.atlassian.com (Settings, API keys) and set {env_hint}."
        )
    if status == 403:
        return ErrorKind.PERMISSION, (
            f"The key may not read {where} (HTTP 403: {message}). Use an organization admin's "
            f"API key; a scoped key needs {SCOPE}. Check {env_hint}."
        )
    if status == 404:
        return ErrorKind.NOT_FOUND, (
            f"No organization '{workspace}' at {api_url} (HTTP 404: {message}). Check "
            "ATLASSIAN_ORG_ID (the id in admin.atlassian.com/o/<id>/) and that the key "
            "belongs to that organization."
        )
    return ErrorKind.BAD_REQUEST, (
        f"The Atlassian Admin API refused the request for {where} (HTTP {status}: "
        f"{message}). Retrying will not help; check ATLASSIAN_ADMIN_API_URL, or report this "
        "as a bb2sv bug."
    )


def _message(body: bytes) -> str:
    """The error text of any Admin API error shape: {code, message}, {errors: [...]}, …"""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        text = first.get("detail") or first.get("title") or first.get("message")
        if isinstance(text, str) and text.strip():
            return text.strip()[:300]
    return error_summary(body)[0]


DIRECTORY_API = Api("organization '{}'", parse_directory_page, explain_status)
