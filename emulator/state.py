"""The emulator's mutable state, shared by the server thread and the test thread.

state = EmulatorState([WorkspaceSpec("acme", members=25)], day=date(2026, 11, 27))
state.resolve("acme"), state.resolve(spec.uuid)     # by slug or {uuid}
pop, order = state.listing(spec)                    # who is listed, in which order
pop, order = state.listing(spec, "owner")           # the permissions listing, filtered
state.directory_users()                             # the organization directory today
state.request_paths()                               # the paths requested, in arrival order
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date

import numpy as np

from emulator.auth import Auth, Credentials, RateLimiter
from emulator.directory import DEFAULT_ORG, OrgSpec, directory_users
from emulator.scenario import FaultState, Scenario
from emulator.world import PERMISSIONS, Population, WorkspaceSpec, population

REQUEST_LOG_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Shift:
    """Members who joined (inserted at the front) or left (removed from the front)."""

    joined: int = 0
    left: int = 0


class EmulatorState:
    def __init__(
        self,
        workspaces: list[WorkspaceSpec],
        *,
        day: date,
        scenario: Scenario | None = None,
        credentials: Credentials | None = None,
        org: OrgSpec = DEFAULT_ORG,
    ) -> None:
        slugs = [w.slug for w in workspaces]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"workspace slugs must be unique, got {slugs}")
        self.specs = {w.slug: w for w in workspaces}
        self._by_uuid = {w.uuid.lower(): w for w in workspaces}
        self.day = day
        self.org = org
        self.faults = FaultState(scenario or Scenario())
        self.auth = Auth(credentials or Credentials())
        self.limiter = RateLimiter()
        self.shifts: dict[str, Shift] = {}
        self._cursors: dict[str, int] = {}
        self._salt = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self.request_count = 0
        # Arrival order of the most recent requests: tests see which listing asked when.
        self._paths: deque[str] = deque(maxlen=REQUEST_LOG_SIZE)
        self.stopping = threading.Event()  # set on shutdown: cuts injected delays short

    async def pause(self, seconds: float) -> None:
        """Injected delay that never blocks other requests and ends early on shutdown."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    @property
    def scenario(self) -> Scenario:
        return self.faults.scenario

    def count_request(self, path: str) -> None:
        with self._lock:
            self.request_count += 1
            self._paths.append(path)

    def request_paths(self) -> list[str]:
        """Paths of the last REQUEST_LOG_SIZE requests (all endpoints), in arrival order."""
        with self._lock:
            return list(self._paths)

    def set_scenario(self, scenario: Scenario) -> None:
        """Install a scenario: resets fault counters, join/leave shifts and budgets."""
        with self._lock:
            self.faults = FaultState(scenario)
            self.shifts = {}
            self.limiter.reset()

    def set_day(self, day: date) -> None:
        with self._lock:
            self.day = day
            self.shifts = {}

    def resolve(self, identifier: str) -> WorkspaceSpec | None:
        """A workspace by slug or by `{uuid}` (braces required, case-insensitive)."""
        if identifier.startswith("{"):
            return self._by_uuid.get(identifier.lower())
        return self.specs.get(identifier)

    def listing(
        self, spec: WorkspaceSpec, permission: str | None = None
    ) -> tuple[Population, np.ndarray]:
        """The population and the listing positions in order (after any join/leave)."""
        shift = self.shifts.get(spec.slug, Shift())
        pop = population(spec, self.day, extra_slots=shift.joined)
        base = np.arange(spec.members, dtype=np.int64)
        if shift.joined:
            order = np.concatenate([np.arange(spec.members, pop.size, dtype=np.int64), base])
        else:
            order = base[shift.left :]
        if permission is not None:
            order = order[pop.permission[order] == PERMISSIONS.index(permission)]
        return pop, order

    def apply_shift(self, spec: WorkspaceSpec) -> None:
        sc = self.scenario
        with self._lock:
            self.shifts[spec.slug] = Shift(joined=sc.members_join, left=sc.members_leave)
            self.faults.shift_applied = True

    def expected_members(self, slug: str) -> list[dict[str, object]]:
        spec = self.specs.get(slug)
        if spec is None:
            raise KeyError(f"no emulated workspace {slug!r}; known: {sorted(self.specs)}")
        pop, order = self.listing(spec)
        return pop.expected(order)

    def directory_users(self) -> list[dict[str, object]]:
        """The organization directory on the current day (every workspace's people)."""
        return directory_users(list(self.specs.values()), self.day, self.org)

    def cursor_for(self, page: int, listing_key: str) -> str:
        """A random-looking page cursor (opaque-cursor mode); stable for the same listing
        request and page, so a next-link loop repeats the same URL."""
        digest = hashlib.blake2b(f"{page}|{listing_key}".encode(), key=self._salt, digest_size=12)
        token = base64.urlsafe_b64encode(digest.digest()).decode()
        with self._lock:
            self._cursors[token] = page
        return token

    def page_for_cursor(self, token: str) -> int | None:
        return self._cursors.get(token)
