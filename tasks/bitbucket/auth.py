"""httpx.Auth classes for the three ways Bitbucket Cloud accepts a caller.

Each one keeps its credential in a `Secret`, so `repr(auth)` shows `***`, and knows which
environment variables to blame when Bitbucket rejects it (`env_hint`).

Usage::

    BearerToken("workspace-access-token")                     # Authorization: Bearer …
    ApiTokenBasic("me@example.com", "atlassian-api-token")    # HTTP Basic email:token
    OAuthClientCredentials("client-id", "secret")             # client credentials → Bearer
    httpx.Client().get(url, auth=BearerToken("…"))

`OAuthClientCredentials` fetches its token through the client that sends the API request
(the token request is part of the auth flow), caches it, refreshes it 60 s before it
expires, and is thread-safe: several workspaces collected at once share one token.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Generator

import httpx
import orjson

from tasks.bitbucket.exceptions import ConfigError, OAuthTokenError
from tasks.bitbucket.secret import Secret
from tasks.canonical import sha256_hex

__all__ = [
    "DEFAULT_OAUTH_TOKEN_URL",
    "ApiTokenBasic",
    "BearerToken",
    "BitbucketAuth",
    "OAuthClientCredentials",
]

DEFAULT_OAUTH_TOKEN_URL = "https://bitbucket.org/site/oauth2/access_token"  # noqa: S105
TOKEN_REQUEST_TIMEOUT = httpx.Timeout(15.0)


def _as_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _fingerprint(*parts: str) -> str:
    # A one-way key for "same credential" (shared rate budget); never shown anywhere.
    return sha256_hex("\x00".join(parts))[:16]


def _header_safe(value: str, variable: str) -> str:
    """A value sent as-is in a header: visible ASCII only. A pasted token often ends in a
    line break, which no HTTP client can send: refused now, not retried until a deadline."""
    for position, char in enumerate(value, start=1):
        if not "\x21" <= char <= "\x7e":
            what = {"\n": "a line feed", "\r": "a carriage return"}.get(char, f"U+{ord(char):04X}")
            raise ConfigError(
                f"{variable} contains {what} at character {position}, which cannot be sent in "
                f"an HTTP header. Copy the token again without line breaks or spaces."
            )
    return value


def _basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class BitbucketAuth(httpx.Auth):
    """What the client needs from any auth mode, beyond `httpx.Auth`."""

    env_hint = "the Bitbucket credentials"  # named in 401 messages
    refreshable = False  # can fetch a fresh token after a 401 (OAuth only)

    def secret_values(self) -> list[str]:
        """Every secret this auth may put on the wire, for scrubbing text before it is shown."""
        return []

    def budget_key(self) -> str:
        """Identifies the credential whose hourly request budget is being spent."""
        raise NotImplementedError

    def seal_material(self) -> bytes:
        """The long-lived secret of these credentials (never a short-lived access token),
        from which spooled attempts' seal is derived (`spool_file.SpoolSeal`)."""
        raise NotImplementedError

    def invalidate(self, request: httpx.Request) -> None:
        """After a 401: drop the token `request` carried, so the next request fetches a new one.

        Only called when `refreshable`.
        """


class BearerToken(BitbucketAuth):
    """A workspace/repository access token, or an OAuth token obtained elsewhere."""

    env_hint = "BITBUCKET_TOKEN"

    def __init__(self, token: str | Secret) -> None:
        self.token = _as_secret(token)
        _header_safe(self.token.reveal(), self.env_hint)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token.reveal()}"
        yield request

    def secret_values(self) -> list[str]:
        return [self.token.reveal()]

    def budget_key(self) -> str:
        return _fingerprint("bearer", self.token.reveal())

    def seal_material(self) -> bytes:
        return b"bearer\0" + self.token.reveal().encode()

    def __repr__(self) -> str:
        return f"BearerToken(token={self.token!r})"


class ApiTokenBasic(BitbucketAuth):
    """An Atlassian API token sent as HTTP Basic with the account's email address."""

    env_hint = "BITBUCKET_EMAIL and BITBUCKET_API_TOKEN"

    def __init__(self, email: str, api_token: str | Secret) -> None:
        self.email = email
        self.api_token = _as_secret(api_token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = _basic_header(self.email, self.api_token.reveal())
        yield request

    def secret_values(self) -> list[str]:
        basic = _basic_header(self.email, self.api_token.reveal()).removeprefix("Basic ")
        return [self.api_token.reveal(), basic]

    def budget_key(self) -> str:
        return _fingerprint("basic", self.email, self.api_token.reveal())

    def seal_material(self) -> bytes:
        return "\0".join(("basic", self.email, self.api_token.reveal())).encode()

    def __repr__(self) -> str:
        return f"ApiTokenBasic(email={self.email!r}, api_token={self.api_token!r})"


class OAuthClientCredentials(BitbucketAuth):
    """OAuth 2.0 client credentials grant: Basic client_id:secret → short-lived Bearer token.

    `monotonic` is injectable so tests can make a token expire without waiting an hour.
    """

    env_hint = "BITBUCKET_OAUTH_CLIENT_ID and BITBUCKET_OAUTH_CLIENT_SECRET"
    refreshable = True
    requires_response_body = True

    def __init__(
        self,
        client_id: str,
        client_secret: str | Secret,
        token_url: str = DEFAULT_OAUTH_TOKEN_URL,
        *,
        refresh_margin: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.client_secret = _as_secret(client_secret)
        self.token_url = token_url
        self.refresh_margin = refresh_margin
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self.token_fetches = 0  # how many tokens were obtained (not secret; useful in logs)

    def __repr__(self) -> str:
        return (
            f"OAuthClientCredentials(client_id={self.client_id!r}, "
            f"client_secret={self.client_secret!r}, token_url={self.token_url!r})"
        )

    def __getstate__(self) -> dict[str, object]:
        # Locks cannot be pickled or deep-copied (process task runners, Prefect input hashing);
        # a copy starts without a token and fetches its own.
        state = dict(self.__dict__)
        state.update(_lock=None, _token=None, _refresh_at=0.0, token_fetches=0)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def secret_values(self) -> list[str]:
        values = [self.client_secret.reveal()]
        values.append(
            _basic_header(self.client_id, self.client_secret.reveal()).removeprefix("Basic ")
        )
        token = self._token
        if token is not None:
            values.append(token.reveal())
        return values

    def budget_key(self) -> str:
        return _fingerprint("oauth", self.token_url, self.client_id)

    def seal_material(self) -> bytes:
        parts = ("oauth", self.token_url, self.client_id, self.client_secret.reveal())
        return "\0".join(parts).encode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # The lock is held across the token request on purpose: concurrent workspaces wait
        # for one fetch instead of each asking for its own token.
        with self._lock:
            if self._token is None or self._monotonic() >= self._refresh_at:
                response = yield self._token_request()
                self._store_token(response)
            token = self._token
        assert token is not None
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        yield request

    def invalidate(self, request: httpx.Request) -> None:
        used = request.headers.get("Authorization", "")
        with self._lock:
            # Another thread may already have replaced the token that failed: keep the new one.
            if self._token is not None and used == f"Bearer {self._token.reveal()}":
                self._token = None

    def _token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials"},
            headers={
                "Authorization": _basic_header(self.client_id, self.client_secret.reveal()),
                "Accept": "application/json",
            },
            extensions={"timeout": TOKEN_REQUEST_TIMEOUT.as_dict()},
        )

    def _store_token(self, response: httpx.Response) -> None:
        status = response.status_code
        if status != 200:
            retryable = status == 429 or status >= 500
            raise OAuthTokenError(
                f"the OAuth token URL {self.token_url} answered HTTP {status}"
                f"{_oauth_error_text(response.content)}",
                retryable=retryable,
                status_code=status,
            )
        try:
            document = orjson.loads(response.content)
            access_token = document["access_token"]
            expires_in = float(document.get("expires_in") or 3600)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            # Never echo the body: it may hold a token.
            raise OAuthTokenError(
                f"the OAuth token URL {self.token_url} returned a response without a usable "
                "access_token",
                retryable=True,
                status_code=status,
            ) from None
        margin = min(self.refresh_margin, expires_in / 2)
        self._token = Secret(str(access_token))
        self._refresh_at = self._monotonic() + expires_in - margin
        self.token_fetches += 1


def _oauth_error_text(body: bytes) -> str:
    """The `error`/`error_description` of an OAuth error body (safe: no tokens in errors)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(document, dict):
        return ""
    parts = [str(document[key]) for key in ("error", "error_description") if document.get(key)]
    return f" ({': '.join(parts)})" if parts else ""
