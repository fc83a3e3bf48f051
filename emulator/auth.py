"""Who is calling: fixed fake credentials, OAuth client-credentials tokens, hourly budgets.

    creds = Credentials()                       # obviously fake defaults, override per field
    auth = Auth(creds)
    caller = auth.identify("Bearer " + creds.admin_token)    # Caller(admin=True, ...)
    auth.identify("Bearer nope")                             # None -> 401

Callers: admin (admin token, Basic email:api_token, OAuth tokens) sees `has_2fa_enabled`;
member token does not; the scopeless token lacks `read:workspace:bitbucket` (403). The
organization API key (`admin_api_key`, Bearer) reads the organization directory only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

WORKSPACE_SCOPE = "read:workspace:bitbucket"
USER_SCOPE = "read:user:bitbucket"
OAUTH_SCOPE = "account"  # legacy OAuth consumer scope; grants both reads
WINDOW_S = 3600.0


@dataclass(frozen=True)
class Credentials:
    """The emulator's accepted credentials. Defaults are fixed, obviously fake strings."""

    admin_token: str = "emu-admin-token-not-a-real-secret"  # noqa: S105 (fake by design)
    member_token: str = "emu-member-token-not-a-real-secret"  # noqa: S105 (fake by design)
    scopeless_token: str = "emu-scopeless-token-not-a-real-secret"  # noqa: S105 (fake by design)
    email: str = "emulator-admin@example.invalid"
    api_token: str = "emu-api-token-not-a-real-secret"  # noqa: S105 (fake by design)
    oauth_client_id: str = "emu-oauth-client-id"
    oauth_client_secret: str = "emu-oauth-client-secret-not-a-real-secret"  # noqa: S105 (fake by design)
    admin_api_key: str = "emu-admin-api-key-not-a-real-secret"  # noqa: S105 (fake by design)

    def __repr__(self) -> str:  # never print secrets, even fake ones
        return f"Credentials(email={self.email!r}, oauth_client_id={self.oauth_client_id!r})"


DEFAULT_CREDENTIALS = Credentials()


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller. `key` identifies its rate budget (a hash, not the secret)."""

    key: str
    admin: bool
    scopes: tuple[str, ...]
    bearer: bool  # access-token caller: gets X-RateLimit-* headers
    display_name: str
    nickname: str

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or OAUTH_SCOPE in self.scopes


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def parse_basic(header: str) -> tuple[str, str] | None:
    """`parse_basic("Basic dTpw")` → ("u", "p"); None when not well-formed Basic auth."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


@dataclass
class Auth:
    creds: Credentials
    _oauth: dict[str, float] = field(default_factory=dict, repr=False)  # token -> expiry
    _refresh: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller for an Authorization header value, or None (-> 401)."""
        if not authorization:
            return None
        c = self.creds
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
            both = (USER_SCOPE, WORKSPACE_SCOPE)
            if secrets.compare_digest(token, c.admin_token):
                return Caller(_fingerprint(token), True, both, True, "Emulator Admin", "emu-admin")
            if secrets.compare_digest(token, c.member_token):
                return Caller(
                    _fingerprint(token), False, both, True, "Emulator Member", "emu-member"
                )
            if secrets.compare_digest(token, c.scopeless_token):
                return Caller(
                    _fingerprint(token), True, (USER_SCOPE,), True, "Emulator Scopeless", "emu-nos"
                )
            with self._lock:
                expiry = self._oauth.get(token)
            if expiry is not None and expiry > time.monotonic():
                return Caller(
                    _fingerprint(token), True, (OAUTH_SCOPE,), True, "Emulator OAuth", "emu-oauth"
                )
            return None
        basic = parse_basic(authorization)
        if basic and basic[0] == c.email and secrets.compare_digest(basic[1], c.api_token):
            return Caller(
                _fingerprint(c.email + c.api_token),
                True,
                (USER_SCOPE, WORKSPACE_SCOPE),
                False,
                "Emulator Admin",
                "emu-admin",
            )
        return None

    def org_admin(self, authorization: str | None) -> Caller | None:
        """The caller of an Admin API request (`Bearer <organization API key>`), or None."""
        scheme, _, value = (authorization or "").partition(" ")
        key = value.strip()
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, self.creds.admin_api_key):
            return None
        return Caller(_fingerprint(key), True, (), True, "Emulator Org Admin", "emu-org-admin")

    def client_ok(self, authorization: str | None) -> bool:
        basic = parse_basic(authorization or "")
        c = self.creds
        return bool(
            basic
            and basic[0] == c.oauth_client_id
            and secrets.compare_digest(basic[1], c.oauth_client_secret)
        )

    def issue(self, expires_in: int) -> dict[str, object]:
        """A fresh OAuth access token (Bitbucket's token response shape)."""
        access, refresh = (
            "emu-oauth-" + secrets.token_urlsafe(24),
            "emu-refresh-" + secrets.token_urlsafe(16),
        )
        with self._lock:
            self._oauth[access] = time.monotonic() + expires_in
            self._refresh.add(refresh)
        return {
            "access_token": access,
            "scopes": OAUTH_SCOPE,
            "expires_in": expires_in,
            "token_type": "bearer",
            "state": "client_credentials",
            "refresh_token": refresh,
        }

    def use_refresh(self, refresh: str) -> bool:
        with self._lock:
            if refresh in self._refresh:
                self._refresh.discard(refresh)
                return True
        return False


@dataclass
class RateLimiter:
    """Rolling one-hour request budget per caller key (real time)."""

    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, budget: int | None) -> tuple[bool, int, float]:
        """Try to spend one request: (allowed, used in window, seconds until one frees)."""
        now = time.monotonic()
        with self._lock:
            window = self._seen.setdefault(key, deque())
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            if budget is not None and len(window) >= budget:
                return False, len(window), window[0] + WINDOW_S - now
            window.append(now)
            return True, len(window), 0.0

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
