"""Client settings, read from the environment.

Usage::

    settings = settings_from_env()                       # os.environ
    settings = settings_from_env({"BITBUCKET_TOKEN": "…", "BITBUCKET_RETRY_DEADLINE": "5"})
    settings = BitbucketSettings(api_url="http://127.0.0.1:8080/2.0", auth=BearerToken("…"))
    repr(settings)   # credentials show as ***

Exactly one auth mode must be configured:

=========================================================  ==============================
variables                                                  mode
=========================================================  ==============================
``BITBUCKET_TOKEN``                                        Bearer (workspace access token)
``BITBUCKET_EMAIL`` + ``BITBUCKET_API_TOKEN``              Basic (Atlassian API token)
``BITBUCKET_OAUTH_CLIENT_ID`` + ``…_CLIENT_SECRET``        OAuth client credentials
=========================================================  ==============================

Tuning: ``BITBUCKET_API_URL``, ``BITBUCKET_OAUTH_TOKEN_URL``, ``BITBUCKET_CONNECT_TIMEOUT``,
``BITBUCKET_READ_TIMEOUT`` (seconds per chunk), ``BITBUCKET_RESPONSE_DEADLINE`` (seconds per
whole response), ``BITBUCKET_RETRY_DEADLINE`` (seconds a page may keep failing, retries and
pacing included), ``BITBUCKET_MAX_ATTEMPTS`` (per page), ``BITBUCKET_RETRY_AFTER_CAP``
(longest Retry-After waited for), ``BITBUCKET_BACKOFF_BASE`` / ``BITBUCKET_BACKOFF_CAP``
(seconds), ``BITBUCKET_MAX_REQUESTS_PER_HOUR`` (client-side pacing budget per credential).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from tasks.bitbucket.auth import (
    DEFAULT_OAUTH_TOKEN_URL,
    ApiTokenBasic,
    BearerToken,
    BitbucketAuth,
    OAuthClientCredentials,
)
from tasks.bitbucket.exceptions import ConfigError

__all__ = [
    "DEFAULT_API_URL",
    "PAGELEN",
    "BitbucketSettings",
    "check_api_url",
    "is_emulator_url",
    "settings_from_env",
    "tuning_from_env",
]

DEFAULT_API_URL = "https://api.bitbucket.org/2.0"
DEFAULT_MAX_REQUESTS_PER_HOUR = 1000
PAGELEN = 100  # Bitbucket's maximum page size

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_AUTH_MODES = {
    "bearer": ("BITBUCKET_TOKEN",),
    "basic": ("BITBUCKET_EMAIL", "BITBUCKET_API_TOKEN"),
    "oauth": ("BITBUCKET_OAUTH_CLIENT_ID", "BITBUCKET_OAUTH_CLIENT_SECRET"),
}


@dataclass(frozen=True, slots=True)
class BitbucketSettings:
    """Everything one collection needs to talk to Bitbucket. Safe to share between threads."""

    auth: BitbucketAuth
    api_url: str = DEFAULT_API_URL
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # per chunk: httpx's read timeout
    response_deadline: float = 60.0  # one whole response, however slowly it drips
    # Seconds one page may keep failing (retries and pacing included) before the attempt
    # gives up; the flow's give-up budget bounds the workspace across attempts.
    retry_deadline: float = 60.0
    max_attempts: int = 8  # per page
    retry_after_cap: float = 60.0  # a longer Retry-After gives up at once, saying when to retry
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_requests_per_hour: int = DEFAULT_MAX_REQUESTS_PER_HOUR

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_url", check_api_url(self.api_url, "api_url"))
        for name in (
            "connect_timeout", "read_timeout", "response_deadline", "retry_deadline",
            "retry_after_cap", "backoff_cap",
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if self.backoff_base < 0:
            raise ConfigError("backoff_base must not be negative")
        if self.max_requests_per_hour < 1:
            raise ConfigError("max_requests_per_hour must be at least 1")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")

    @property
    def emulated(self) -> bool:
        """Runs read with these settings are emulator data (see `is_emulator_url`)."""
        return is_emulator_url(self.api_url)

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)


def is_emulator_url(url: str) -> bool:
    """Whether a configured API URL is on this machine's loopback, where the emulator runs:
    what makes a run `emulated` (its reports say EMULATOR DATA). Decided from the URL bb2sv
    was configured with, never from a response: a real API cannot be tagged emulated, and a
    server cannot declare itself the emulator."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(url: str, variable: str) -> str:
    """An https URL, or http on loopback only (the emulator): a token never crosses a
    network in clear text."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"{variable} is not a valid URL: {url!r}") from exc
    if parsed.userinfo:
        raise ConfigError(f"{variable} must not contain credentials; use the auth variables")
    if parsed.scheme == "https" and parsed.host:
        return str(parsed).rstrip("/")
    if parsed.scheme == "http" and parsed.host in _LOOPBACK_HOSTS:
        return str(parsed).rstrip("/")
    raise ConfigError(
        f"{variable} must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost), "
        f"got {str(parsed)!r}"
    )


def settings_from_env(env: Mapping[str, str] | None = None) -> BitbucketSettings:
    """Build settings from environment variables; raise ConfigError naming what to set."""
    values = _bitbucket_values(env)
    api_url = check_api_url(values.get("BITBUCKET_API_URL", DEFAULT_API_URL), "BITBUCKET_API_URL")
    return BitbucketSettings(auth=_auth_from_env(values), api_url=api_url, **tuning_from_env(env))


def tuning_from_env(env: Mapping[str, str] | None = None) -> dict[str, float]:
    """The timeouts, deadlines, attempts, backoff and hourly budget of the ``BITBUCKET_*``
    tuning variables, as `BitbucketSettings` keyword arguments. The organization directory
    is read with the same ones."""
    values = _bitbucket_values(env)
    return {
        "connect_timeout": _number(values, "BITBUCKET_CONNECT_TIMEOUT", 10.0),
        "read_timeout": _number(values, "BITBUCKET_READ_TIMEOUT", 30.0),
        "response_deadline": _number(values, "BITBUCKET_RESPONSE_DEADLINE", 60.0),
        "retry_deadline": _number(values, "BITBUCKET_RETRY_DEADLINE", 60.0),
        "max_attempts": _whole(values, "BITBUCKET_MAX_ATTEMPTS", 8),
        "retry_after_cap": _number(values, "BITBUCKET_RETRY_AFTER_CAP", 60.0),
        "backoff_base": _number(values, "BITBUCKET_BACKOFF_BASE", 1.0, allow_zero=True),
        "backoff_cap": _number(values, "BITBUCKET_BACKOFF_CAP", 30.0),
        "max_requests_per_hour": _whole(
            values, "BITBUCKET_MAX_REQUESTS_PER_HOUR", DEFAULT_MAX_REQUESTS_PER_HOUR
        ),
    }


def _bitbucket_values(env: Mapping[str, str] | None) -> dict[str, str]:
    """The set, non-blank ``BITBUCKET_*`` variables, stripped."""
    env = os.environ if env is None else env
    values = {name: value.strip() for name, value in env.items() if name.startswith("BITBUCKET_")}
    return {name: value for name, value in values.items() if value}


def _auth_from_env(values: Mapping[str, str]) -> BitbucketAuth:
    present = {mode: [n for n in names if n in values] for mode, names in _AUTH_MODES.items()}
    chosen = [mode for mode, names in present.items() if names]
    if not chosen:
        raise ConfigError(
            "no Bitbucket credentials: set BITBUCKET_TOKEN (access token), or BITBUCKET_EMAIL "
            "and BITBUCKET_API_TOKEN (API token), or BITBUCKET_OAUTH_CLIENT_ID and "
            "BITBUCKET_OAUTH_CLIENT_SECRET (OAuth consumer)"
        )
    if len(chosen) > 1:
        named = ", ".join(name for mode in chosen for name in present[mode])
        raise ConfigError(
            f"ambiguous Bitbucket credentials: {named} are all set; set the variables of "
            "exactly one auth mode and unset the others"
        )
    mode = chosen[0]
    missing = [name for name in _AUTH_MODES[mode] if name not in values]
    if missing:
        raise ConfigError(
            f"incomplete Bitbucket credentials: {', '.join(present[mode])} is set but "
            f"{', '.join(missing)} is missing"
        )
    if mode == "bearer":
        return BearerToken(values["BITBUCKET_TOKEN"])
    if mode == "basic":
        return ApiTokenBasic(values["BITBUCKET_EMAIL"], values["BITBUCKET_API_TOKEN"])
    token_url = check_api_url(
        values.get("BITBUCKET_OAUTH_TOKEN_URL", DEFAULT_OAUTH_TOKEN_URL),
        "BITBUCKET_OAUTH_TOKEN_URL",
    )
    return OAuthClientCredentials(
        values["BITBUCKET_OAUTH_CLIENT_ID"], values["BITBUCKET_OAUTH_CLIENT_SECRET"], token_url
    )


# A week: no wait of a collection needs longer, and the clocks that time waits (deadlines
# on the monotonic clock, the alarm thread's timestamps) overflow on values far beyond it.
MAX_SECONDS = 7 * 24 * 3600.0
MAX_COUNT = 1_000_000


def _number(
    values: Mapping[str, str],
    name: str,
    default: float,
    *,
    allow_zero: bool = False,
    maximum: float = MAX_SECONDS,
) -> float:
    raw = values.get(name)
    if raw is None:
        return float(default)
    try:
        number = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        wanted = "a number of 0 or more" if allow_zero else "a positive number"
        raise ConfigError(f"{name} must be {wanted}, got {raw!r}")
    if number > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g}, got {raw!r}")
    return number


def _whole(values: Mapping[str, str], name: str, default: int) -> int:
    """A count: a whole number of at least 1 (`8`, or `8.0`, not `0.5`)."""
    number = _number(values, name, default, maximum=MAX_COUNT)
    if number != int(number) or number < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {values[name]!r}")
    return int(number)
