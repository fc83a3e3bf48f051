"""Errors of the Bitbucket client.

`ConfigError` is raised to the caller (bad or missing settings: nothing was sent). The
`BitbucketError` family is raised inside the client and turned into a `WorkspaceExtract`
with `status` and `error_kind` by `extract_workspace`, which never raises for API faults.
No message here ever contains a secret: they are built from status codes, server error
messages (scrubbed) and variable names only.

Usage::

    try:
        settings = settings_from_env()
    except ConfigError as exc:
        raise SystemExit(str(exc))

    except BitbucketError as exc:       # inside the client
        exc.kind, exc.message           # ErrorKind.AUTH, "Bitbucket rejected …"
"""

from __future__ import annotations

from tasks.vocabulary import ErrorKind

__all__ = [
    "ApiStatusError",
    "BitbucketError",
    "CollectionStopped",
    "ConfigError",
    "OAuthTokenError",
    "PaginationAnomaly",
    "RetryBudgetExhausted",
]


class ConfigError(ValueError):
    """The environment or settings are missing, partial, ambiguous or invalid."""


class BitbucketError(Exception):
    """Base of every API fault. `kind` is the `WorkspaceExtract.error_kind` it maps to."""

    kind: ErrorKind = ErrorKind.TRANSIENT

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ApiStatusError(BitbucketError):
    """An answer retrying cannot fix: 400/401/403/404 and other 4xx, or a refused OAuth token.

    `kind` is auth | permission | not_found | bad_request.
    """


class RetryBudgetExhausted(BitbucketError):
    """A page's retry budget ran out: its deadline, `max_attempts`, a Retry-After past the
    cap, or the hourly request budget. `kind` is transient | rate_limited."""


class PaginationAnomaly(BitbucketError):
    """The listing cannot be trusted to be whole: next-link loop, foreign next host, …"""

    kind = ErrorKind.ANOMALY


class CollectionStopped(BitbucketError):
    """A stop was requested (tasks/signals.py): the attempt ends as `failed`, pages kept.

    `reason` is the stop's (e.g. 'SIGTERM', or a scoped stop's own reason).
    """

    kind = ErrorKind.STOPPED

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class OAuthTokenError(BitbucketError):
    """The OAuth token endpoint refused or failed. `retryable` for 429, 5xx or an unusable body."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message, kind=ErrorKind.TRANSIENT if retryable else ErrorKind.AUTH)
        self.retryable = retryable
        self.status_code = status_code
