"""Fault injection for the emulator: what goes wrong, when, and on which listing.

    emu.set_scenario(Scenario(rate_limit_storm=3, retry_after="http-date"))
    emu.set_scenario(Scenario(html_errors=2, fault_listing="permissions", fault_after=1))
    emu.set_scenario(Scenario(members_join=5))    # duplicates appear across pages
    emu.set_scenario(Scenario(fault_listing="directory", next_loop=True))  # the org directory
    emu.set_scenario(Scenario())                  # back to a healthy API

A `Scenario` is frozen: build a new one (or `dataclasses.replace(old, ...)`) and pass it to
`emu.set_scenario`; it takes effect for the next request and resets every fault counter.

"Listing requests" are GET .../members, GET .../permissions and the organization
directory's GET /admin/v2/orgs/{org}/directories/{dir}/users that passed authentication,
validation and the hourly budget. Counted faults (`rate_limit_storm`, `html_errors`,
`slow_responses`, `truncated_json`, `auth_failures`, `drip_responses`) each hit that many
listing requests, in that order (the first `rate_limit_storm` requests get 429, the next
`html_errors` get HTML, ...), once `fault_after` listing requests of the targeted listing have
been served normally. The directory's 429 says when to come back in `X-RateLimit-Reset`
(ISO-8601), as the Admin API does, not in `Retry-After`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal, get_args

Listing = Literal["members", "permissions", "directory"]
RetryAfter = Literal["seconds", "http-date", "none"]
CountedFault = Literal[
    "rate_limit_storm",
    "html_errors",
    "slow_responses",
    "truncated_json",
    "auth_failures",
    "drip_responses",
]
COUNTED_FAULTS: tuple[CountedFault, ...] = get_args(CountedFault)  # in the order they hit


@dataclass(frozen=True, slots=True)
class Scenario:
    """How the emulated API misbehaves. Every field defaults to "healthy".

    Always on (every request):
    - `latency_s`: how long every response takes at least, the emulator's own work included
      (async: concurrent requests are not held up).
    - `hourly_budget`: requests allowed per credential in a rolling hour (real time); beyond
      it, 429 "Rate limit for this resource has been exceeded" with `Retry-After` (seconds
      until a request leaves the window, shaped by `retry_after`). None = unlimited; when set,
      Bearer callers get X-RateLimit-Limit and X-RateLimit-NearLimit (true at >= 80% used).
    - `opaque_cursor`: `next` carries a random-looking `page=<cursor>` instead of `page=N`
      and `page` is left out of the body; a numeric `page` is then rejected with 400.
    - `oauth_expires_in`: lifetime in seconds (real time) of tokens from the token endpoint.

    Targeting (all faults below):
    - `fault_listing`: "members", "permissions" or "directory"; None = every listing.
    - `fault_workspace`: slug of the one workspace to hit; None = every workspace (and the
      directory, which belongs to none).
    - `fault_after`: listing requests of the targeted listing served normally before counted
      faults and `members_join`/`members_leave` start.

    Counted faults (N listing requests each, in this order):
    - `rate_limit_storm`: N requests get 429; `retry_after` says how `Retry-After` is sent:
      "seconds" (`retry_after_s`), "http-date" (now + `retry_after_s`), or "none" (absent).
    - `html_errors`: N requests get an HTML page with status `html_error_status` (502/503/504).
    - `slow_responses`: N requests are answered correctly but only after `slow_s` seconds
      (set it above the client's read timeout).
    - `truncated_json`: N requests get status 200 with the JSON body cut in half.
    - `auth_failures`: N requests get 401, as if the credential were revoked mid-read.
    - `drip_responses`: N requests get status 200 and their body `drip_bytes` bytes at a
      time, every `drip_interval_s` seconds: each chunk beats a read timeout, the whole
      response takes minutes.

    Page-shape faults (every page of the targeted listing):
    - `next_loop`: the last page's `next` points back to page 1 (the directory: a cursor to
      page 1), so pagination never ends.
    - `members_join` / `members_leave`: once the first page has been served, N new members
      are inserted at / N members removed from the front of the list, so later pages shift:
      the client sees a member twice (join) or fewer members than `size` (leave). The change
      persists (it is now the world's truth, see `emu.expected_members`) until the next
      `set_scenario` or `set_day`.
    - `omit_size`: pages carry no `size`.
    - `size_offset`: `size` is the true count plus this (e.g. 3 or -1).
    - `size_as_text`: `size` is sent as a JSON string ("250"), not a number.
    - `account_id_as_number`: the first member of each page has a numeric account_id.
    - `without_account_id`: users carry a uuid and no account_id, as in Atlassian's own
      example of the /permissions listing (target it with `fault_listing`).
    - `display_name_bytes`: the first member of each page without 2SV enabled (a violation,
      so a Prefect event names them) has a display name this long.
    - `two_step_key_twice`: the first member of each page without 2SV enabled gives
      `has_2fa_enabled` twice, `false` then `true` (readers disagree on which counts).
    """

    latency_s: float = 0.0
    hourly_budget: int | None = None
    opaque_cursor: bool = False
    oauth_expires_in: int = 3600

    fault_listing: Listing | None = None
    fault_workspace: str | None = None
    fault_after: int = 0

    rate_limit_storm: int = 0
    retry_after: RetryAfter = "seconds"
    retry_after_s: int = 1
    html_errors: int = 0
    html_error_status: int = 502
    slow_responses: int = 0
    slow_s: float = 5.0
    truncated_json: int = 0
    auth_failures: int = 0
    drip_responses: int = 0
    drip_bytes: int = 16
    drip_interval_s: float = 0.5

    next_loop: bool = False
    members_join: int = 0
    members_leave: int = 0
    omit_size: bool = False
    size_offset: int = 0
    size_as_text: bool = False
    account_id_as_number: bool = False
    without_account_id: bool = False
    display_name_bytes: int = 0
    two_step_key_twice: bool = False

    def __post_init__(self) -> None:
        counts = {
            "fault_after": self.fault_after,
            "rate_limit_storm": self.rate_limit_storm,
            "retry_after_s": self.retry_after_s,
            "html_errors": self.html_errors,
            "slow_responses": self.slow_responses,
            "truncated_json": self.truncated_json,
            "auth_failures": self.auth_failures,
            "drip_responses": self.drip_responses,
            "display_name_bytes": self.display_name_bytes,
            "members_join": self.members_join,
            "members_leave": self.members_leave,
        }
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"Scenario.{name} must be >= 0, got {value}")
        if self.latency_s < 0 or self.slow_s < 0 or self.drip_interval_s < 0:
            raise ValueError("Scenario.latency_s, slow_s and drip_interval_s must be >= 0 s")
        if self.drip_bytes < 1:
            raise ValueError("Scenario.drip_bytes must be >= 1")
        if self.hourly_budget is not None and self.hourly_budget < 1:
            raise ValueError("Scenario.hourly_budget must be >= 1 or None (unlimited)")
        if self.fault_listing not in (None, "members", "permissions", "directory"):
            raise ValueError(
                "Scenario.fault_listing must be 'members', 'permissions', 'directory' or None"
            )
        if self.retry_after not in ("seconds", "http-date", "none"):
            raise ValueError("Scenario.retry_after must be 'seconds', 'http-date' or 'none'")
        if not 500 <= self.html_error_status <= 599:
            raise ValueError("Scenario.html_error_status must be a 5xx status")
        if self.members_join and self.members_leave:
            raise ValueError("Scenario: set members_join or members_leave, not both")

    def targets(self, listing: str, workspace: str) -> bool:
        """Do the faults apply to this listing of this workspace (slug)?"""
        return self.fault_listing in (None, listing) and self.fault_workspace in (None, workspace)


@dataclass(slots=True)
class FaultState:
    """Counters for the active scenario (reset by `set_scenario`); thread-safe."""

    scenario: Scenario = field(default_factory=Scenario)
    served: int = 0  # targeted listing requests seen so far
    used: dict[str, int] = field(default_factory=dict)
    shift_applied: bool = False  # members_join/members_leave has happened
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self, listing: str, workspace: str) -> CountedFault | None:
        """Count one listing request; return the counted fault it should suffer, if any."""
        sc = self.scenario
        if not sc.targets(listing, workspace):
            return None
        with self.lock:
            self.served += 1
            if self.served <= sc.fault_after:
                return None
            for name in COUNTED_FAULTS:
                if self.used.get(name, 0) < getattr(sc, name):
                    self.used[name] = self.used.get(name, 0) + 1
                    return name
        return None

    def shift_ready(self, listing: str, workspace: str) -> bool:
        """True when a join/leave should happen after the page being served now."""
        sc = self.scenario
        wanted = sc.members_join or sc.members_leave
        return (
            bool(wanted)
            and sc.targets(listing, workspace)
            and not self.shift_applied
            and (self.served > sc.fault_after)
        )
