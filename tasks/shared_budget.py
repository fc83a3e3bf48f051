"""One hourly API budget per credential, shared by every flow run that uses the credential.

Bitbucket counts requests per credential in a rolling hour. One process paces itself with
`tasks.bitbucket.ratelimit.RequestPacer`; flow runs of several deployments (or workers) that
use the same token need one budget between them. With a Prefect API, that budget is a
Prefect global concurrency limit used as a rate limit: `limit` = the hourly budget, slots
decaying at limit/3600 per second, one slot per request. Its name carries a one-way
fingerprint of the API URL and the credential (never the secret itself).

    name = budget_limit_name(settings)      # 'bb2sv-api-3f2a…'
    ensure_budget_limit(settings)           # create (or, with update=True, correct) the limit
    pacer = pacer_for_run(settings)         # SharedBudget with a Prefect API, else RequestPacer

Without a Prefect API (the CLI on its own temporary server) the in-process pacer is used.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from tasks.bitbucket.config import BitbucketSettings
from tasks.bitbucket.ratelimit import WINDOW_SECONDS, RequestPacer, pacer_for
from tasks.bitbucket.retry import retry_after_seconds
from tasks.canonical import sha256_hex
from tasks.prefect_api import prefect_api_configured
from tasks.signals import STOP, StopFlag

__all__ = [
    "SharedBudget",
    "budget_limit_name",
    "ensure_budget_limit",
    "pacer_for_run",
    "read_budget_limit",
]

log = logging.getLogger("bb2sv.budget")

LOCKED = 423  # the Prefect API's answer when the limit has no free slot
SLOTS_PER_CALL = 10
# A SQLite-backed Prefect server answers a write that meets another one with 503 at once,
# and Prefect's client sleeps 2 s (then 4, 8 …) before it tries again: a stall at the start
# of most collections, when the listings' first slots meet the task runs' own writes. A
# slot is one small write, so it is sent without that retry loop and asked again after
# BUSY_PAUSES, then paced locally.
BUSY = frozenset({429, 502, 503})  # 429: Prefect Cloud's own rate limit (with Retry-After)
BUSY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
INCREMENT_PATH = "/v2/concurrency_limits/increment"


def budget_limit_name(settings: BitbucketSettings) -> str:
    """The global concurrency limit of this credential at this API (no secret in it)."""
    return "bb2sv-api-" + sha256_hex(f"{settings.api_url}\n{settings.auth.budget_key()}")[:16]


def ensure_budget_limit(settings: BitbucketSettings, *, update: bool = False) -> str:
    """Create the credential's rate limit if it is missing; with `update`, also set its limit
    and decay to the settings' hourly budget. Returns its name."""
    from prefect.client.orchestration import get_client

    name = budget_limit_name(settings)
    if update or read_budget_limit(name) is None:
        budget = settings.max_requests_per_hour
        try:
            with get_client(sync_client=True) as client:
                client.upsert_global_concurrency_limit_by_name(
                    name, budget, budget / WINDOW_SECONDS
                )
        except Exception:
            # Another process created it between the read and the create: that is the goal.
            if read_budget_limit(name) is None:
                raise
    return name


def read_budget_limit(name: str) -> tuple[int, float] | None:
    """(limit, slot decay per second) of the rate limit `name`, or None if there is none."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None
    return found.limit, found.slot_decay_per_second


class SharedBudget(RequestPacer):
    """A pacer whose every slot is also a slot of the Prefect rate limit `name`.

    `reserve` takes a slot the process already holds, or asks the Prefect API for `batch`
    of them (each API call is a write, and a SQLite-backed server answers concurrent writes
    with 503 and costly client retries: fewer calls, fewer stalls; at most `batch - 1` slots
    of the hour go unused when the process ends). While the limit has none (HTTP 423) it
    waits as long as the API's Retry-After says, on `stop` (the caller's flag, so a stop
    ends the wait), never
    past the caller's `within`, and then asks for one. It then books the local slot as
    `RequestPacer` does, which also keeps the slower pace Bitbucket asks for with
    X-RateLimit-NearLimit.
    """

    def __init__(self, name: str, max_per_window: int, batch: int = SLOTS_PER_CALL) -> None:
        super().__init__(max_per_window)
        self.name = name
        self.batch = max(1, min(batch, max_per_window))
        self._held = 0  # slots of the shared limit taken and not used yet
        self._client: Any = None
        # One API call at a time per process, for the same reason as the batches.
        self._api_lock = threading.Lock()

    def reserve(self, now: float, within: float = float("inf"), stop: StopFlag = STOP) -> float:
        started = time.monotonic()
        wanted = self.batch
        busy = iter(BUSY_PAUSES)
        while True:
            try:
                with self._api_lock:
                    if not self._held:
                        self._increment(wanted)
                        self._held = wanted
                    self._held -= 1
                break
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == LOCKED:
                    wanted = 1  # the limit is short: take what this request needs, no more
                    retry_after = _retry_after(exc.response, 1.0)
                elif status in BUSY and (pause := next(busy, None)) is not None:
                    retry_after = _retry_after(exc.response, pause)
                else:
                    return self._unavailable(exc, now)
            except Exception as exc:  # the API went away mid-run
                return self._unavailable(exc, now)
            left = within - (time.monotonic() - started)
            if retry_after >= left or stop.wait(retry_after):
                return float("inf")  # no shared slot within the caller's wait
        return super().reserve(now + (time.monotonic() - started))

    def _increment(self, slots: int) -> None:
        """Take `slots` of the limit in one request through the Prefect client's own
        connection (its URL, auth and TLS settings), but not through its retry loop (see
        BUSY). Raises httpx.HTTPStatusError for an error status. Called under _api_lock."""
        http = self._api()._client  # Prefect's httpx.Client; if it ever goes: paced locally
        body = {"names": [self.name], "slots": slots, "mode": "rate_limit"}
        request = http.build_request("POST", INCREMENT_PATH, json=body)
        if http.enable_csrf_support:  # what Prefect's send adds to a POST
            http._add_csrf_headers(request)
        response = httpx.Client.send(http, request)
        response.raise_for_status()

    def _api(self) -> Any:
        # One client (one keep-alive connection) for every request of the process: a slot
        # costs one small API call, not a new connection. Called under _api_lock.
        if self._client is None:
            from prefect.client.orchestration import get_client

            self._client = get_client(sync_client=True).__enter__()
        return self._client

    def _unavailable(self, exc: Exception, now: float) -> float:
        # Pacing locally is better than not reading at all; the warning says what happened.
        log.warning("shared API budget %s unavailable (%s); pacing locally", self.name, exc)
        return super().reserve(now)


def _retry_after(response: httpx.Response, default: float) -> float:
    """The response's Retry-After in seconds, or `default` when it has none (or nonsense)."""
    seconds = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
    return default if seconds is None else seconds


_SHARED: dict[str, SharedBudget] = {}
_SHARED_LOCK = threading.Lock()


def pacer_for_run(settings: BitbucketSettings) -> RequestPacer:
    """The shared budget when a Prefect API is configured, else this process's pacer."""
    if not prefect_api_configured():
        return pacer_for(settings)
    name = budget_limit_name(settings)
    # Held while the limit is made sure of and the client started: concurrent extractions of
    # one process wait for one setup (before their page deadlines start) instead of racing.
    with _SHARED_LOCK:
        shared = _SHARED.get(name)
        if shared is not None:
            return shared
        try:
            ensure_budget_limit(settings)
            shared = SharedBudget(name, settings.max_requests_per_hour)
            with shared._api_lock:
                shared._api()
        except Exception as exc:  # the API is down or refuses: pace locally, not at all
            log.warning("shared API budget unavailable (%s); pacing within this process only", exc)
            return pacer_for(settings)
        _SHARED[name] = shared
        return shared
