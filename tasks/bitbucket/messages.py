"""Messages for answers that retrying cannot fix: what went wrong and what to change.

Usage::

    kind, text = status_error(403, response.content, workspace="acme",
                              listing=Listing.MEMBERS, api_url=settings.api_url,
                              env_hint=settings.auth.env_hint)
    kind     # ErrorKind.PERMISSION
    text     # "The credentials may not read members of workspace 'acme' (HTTP 403: …).
             #  Granted scopes: …; required: read:workspace:bitbucket. …"
    error_summary(b"<html>…")[0]     # 'an HTML page'
    oauth_refused("the OAuth token URL … answered HTTP 401", "acme", env_hint)
"""

from __future__ import annotations

import orjson

from tasks.canonical import visible_controls
from tasks.vocabulary import ErrorKind, Listing

__all__ = ["error_summary", "oauth_refused", "seconds", "status_error"]

_MAX_DETAIL = 300


def seconds(value: float) -> str:
    """A wait as people read it: `0.0899 s`, `3.41 s`, `3600 s` (never `3.6e+03 s`)."""
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


def error_summary(body: bytes) -> tuple[str, list[str] | None, list[str] | None]:
    """(message, granted scopes, required scopes) from a Bitbucket error body, any shape."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:120].decode("utf-8", "replace").strip()
        looks_html = text.lower().startswith(("<!doctype", "<html"))
        return ("an HTML page" if looks_html else "a non-JSON body"), None, None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        error = document if isinstance(document, dict) else {}
    message = _shown(error.get("message") or "")
    detail = error.get("detail")
    granted = required = None
    for source in (detail, error.get("data"), error):
        if isinstance(source, dict) and ("granted" in source or "required" in source):
            granted = _scopes(source.get("granted"))
            required = _scopes(source.get("required"))
            break
    if not message and isinstance(detail, str):
        message = _shown(detail)
    return message or "no message", granted, required


def _shown(text: object) -> str:
    # The server's words go into errors, logs, the evidence and the terminal: cut short, and
    # with any escape sequence visible rather than acted on.
    return visible_controls(str(text).strip()[:_MAX_DETAIL])


def _scopes(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return []


def oauth_refused(problem: str, workspace: str, env_hint: str) -> str:
    """The message for an OAuth token endpoint that rejected the client credentials."""
    return (
        f"Could not get an OAuth token to read workspace '{workspace}': {problem}. "
        f"Check {env_hint} (and BITBUCKET_OAUTH_TOKEN_URL if set)."
    )


def body_too_large(detail: str, where: str, api_url: str) -> str:
    """The message for a page (of `where`: "members of workspace 'acme'") whose body passed
    the client's limit once decoded."""
    return (
        f"A page of {where} from {api_url} was too large ({detail}). A page holds at most "
        "100 entries (about 100 KB), so this is not one the API sends: the same request would "
        "get it again. Nothing more was read. Check the API URL and any proxy in between, "
        "then run the collection again."
    )


def status_error(
    status: int, body: bytes, *, workspace: str, listing: Listing, api_url: str, env_hint: str
) -> tuple[ErrorKind, str]:
    """(kind, message) for an HTTP answer that retrying cannot fix (4xx but 429)."""
    message, granted, required = error_summary(body)
    where = f"{listing} of workspace '{workspace}'"
    if status == 401:
        text = (
            f"Bitbucket rejected the credentials while reading {where} (HTTP 401: {message}). "
            f"The token is invalid, expired, revoked or not valid for this endpoint: "
            f"check {env_hint}."
        )
        return ErrorKind.AUTH, text
    if status == 403:
        scopes = ""
        if granted is not None or required is not None:
            scopes = (
                f" Granted scopes: {', '.join(granted or []) or 'none'}; "
                f"required: {', '.join(required or []) or 'not stated'}."
            )
        text = (
            f"The credentials may not read {where} (HTTP 403: {message}).{scopes} "
            "Use a token with the read:workspace:bitbucket scope (OAuth consumers: 'account'), "
            "belonging to a workspace admin: only admins can see members' two-step "
            f"verification status. Check {env_hint}."
        )
        return ErrorKind.PERMISSION, text
    if status == 404:
        text = (
            f"No workspace '{workspace}' at {api_url} (HTTP 404: {message}). Check the workspace "
            "slug (the name after bitbucket.org/ in its URL) or give its {uuid}, and that the "
            "credentials belong to a member of it."
        )
        if not api_url.rstrip("/").endswith("/2.0"):
            # Bitbucket's REST API lives under /2.0: without it every workspace is "missing".
            text += (
                f" Also check BITBUCKET_API_URL: it usually ends in /2.0, and {api_url} does not."
            )
        return ErrorKind.NOT_FOUND, text
    text = (
        f"Bitbucket refused the request for {where} (HTTP {status}: {message}). Retrying will "
        "not help; check the workspace name and BITBUCKET_API_URL, or report this as a bb2sv bug."
    )
    return ErrorKind.BAD_REQUEST, text


def credentials_echoed(masked: int) -> str:
    """Why a read that echoed the credentials in `masked` responses is not complete."""
    return (
        f"{masked} response(s) contained the credentials, which were masked before the pages "
        "were kept: those pages are not as received, so the read is not complete. Bitbucket "
        "and Atlassian never send them back; check the API URL setting."
    )
