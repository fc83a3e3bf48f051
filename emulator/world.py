"""Deterministic synthetic workspaces that evolve day by day (the simulated clock).

    spec = WorkspaceSpec("acme", members=250, seed=1)
    pop = population(spec, date(2026, 11, 27))
    pop.size, pop.user(0)["display_name"], pop.expected()[0]["has_2fa_enabled"]

Model (all of it is a pure function of (seed, slug, day): no iteration from an epoch):
- A workspace has `members` *slots*; the listing order is slot order. Each slot is held by a
  succession of people: slot s has a tenure length (2,500-6,500 days) and a phase, so its
  occupant on day d is generation `(d + phase) // tenure`. When a generation ends the person
  leaves and a new person joins the same slot that day, so the member count stays exactly
  `members` while a few hundred members see a handful of joins/leaves per quarter.
- Each person (slot, generation) draws a 2SV category: enabled ~85%, disabled ~10% (stays
  disabled: SLA breaches exist), unknown/null ~5%. "Enabled" people start without 2SV for an
  onboarding delay (0 days for half, 1-10 for most others, 15-34 for some) and have rare
  lapses (2SV off for 1-10 days, sometimes 15-40) on a per-person cycle of 4,000-12,000 days.
- Permission: owner ~2% (slot 0 is always an owner), collaborator ~1%, else member.
- App users (Bitbucket's `app_user`, since 2023): a `app_user_share` of the people (never
  slot 0), with a `kind`; they cannot hold 2SV, so their has_2fa_enabled is false.
All draws come from a counter-based hash (splitmix64) of the person key, vectorised with
numpy, so 100,000 members take milliseconds; identity strings are built only when needed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date
from functools import cached_property, lru_cache

import numpy as np

from emulator.names import CULTURES, NAMES_PER_CULTURE, ascii_name, display_name

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
PERMISSIONS = ("member", "owner", "collaborator")  # index = code in Population.permission
APP_USER_KINDS = ("forge", "connect")  # an app user's `kind`, by draw
ACCOUNT_SALTS, UUID_SALTS = (101, 102), (103, 104)  # draws behind account_id and uuid
ENABLED, DISABLED, UNKNOWN = 1, 0, -1  # codes in Population.twosv

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_HI_MASK = _U64(0xFFFF_FFFF_FFFF_0FFF)  # UUID version nibble is overwritten when formatting
_LO_MASK = _U64(0x3FFF_FFFF_FFFF_FFFF)  # ... and so are the variant bits


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    """One emulated workspace: `WorkspaceSpec("acme", members=250, seed=1)`.

    `members` is the population on every day (joins replace leavers); `name` defaults to the
    slug title-cased. The workspace uuid is derived from (seed, slug). `app_user_share` of
    the members are app users (none by default).
    """

    slug: str
    members: int = 250
    seed: int = 0
    name: str | None = None
    app_user_share: float = 0.0

    def __post_init__(self) -> None:
        if not self.slug or "/" in self.slug or self.slug.startswith("{"):
            raise ValueError(f"workspace slug {self.slug!r} must be non-empty, without '/' or '{{'")
        if self.members < 0:
            raise ValueError(f"members must be >= 0, got {self.members}")
        if not 0.0 <= self.app_user_share <= 1.0:
            raise ValueError(f"app_user_share must be in [0, 1], got {self.app_user_share}")

    @property
    def display_name(self) -> str:
        return self.name or self.slug.replace("-", " ").title()

    @property
    def key(self) -> int:
        """64-bit key every draw for this workspace starts from."""
        digest = hashlib.blake2b(f"{self.seed}:{self.slug}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    @property
    def uuid(self) -> str:
        digest = hashlib.blake2b(f"ws:{self.seed}:{self.slug}".encode(), digest_size=16).digest()
        return "{" + str(uuid.UUID(bytes=digest, version=4)) + "}"


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> _U64(30))) * _M1
        x = (x ^ (x >> _U64(27))) * _M2
        return x ^ (x >> _U64(31))


def _draw(key: np.ndarray, salt: int) -> np.ndarray:
    """Independent 64-bit draw number `salt` for each key."""
    return _mix(key ^ _mix(np.full(key.shape, salt, dtype=np.uint64)))


def _uniform(key: np.ndarray, salt: int) -> np.ndarray:
    return (_draw(key, salt) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _span(key: np.ndarray, salt: int, low: int, width: int) -> np.ndarray:
    """Integer draw in [low, low + width)."""
    return low + (_uniform(key, salt) * width).astype(np.int64)


def uuid_from(key: int, salt_hi: int, salt_lo: int) -> str:
    """A version-4-shaped UUID string drawn from a 64-bit key (deterministic)."""
    arr = np.array([key], dtype=np.uint64)
    hi, lo = int(_draw(arr, salt_hi)[0]), int(_draw(arr, salt_lo)[0])
    return str(uuid.UUID(int=(hi << 64) | lo, version=4))


@dataclass(frozen=True, eq=False)
class Population:
    """The members of one workspace on one day, in listing order (numpy columns)."""

    spec: WorkspaceSpec
    day: date
    person: np.ndarray  # uint64 person key (slot, generation)
    join_day: np.ndarray  # date ordinal the person joined
    permission: np.ndarray  # int8 index into PERMISSIONS
    twosv: np.ndarray  # int8 ENABLED / DISABLED / UNKNOWN
    name_codes: np.ndarray  # (n, 3) culture, first, last
    app_user: np.ndarray  # bool: an app user (Bitbucket user.type app_user)

    @property
    def size(self) -> int:
        return int(self.person.shape[0])

    def rows(self, positions: np.ndarray | list[int]) -> list[dict[str, object]]:
        """Identity and 2SV state of the members at these listing positions (vectorised
        draws; only the strings are built per member). App users carry `kind` and 2SV off."""
        idx = np.asarray(positions, dtype=np.int64)
        keys = self.person[idx]
        account_hi, account_lo = _draw(keys, ACCOUNT_SALTS[0]), _draw(keys, ACCOUNT_SALTS[1])
        uuid_hi, uuid_lo = _draw(keys, UUID_SALTS[0]), _draw(keys, UUID_SALTS[1])
        out = []
        for k, i in enumerate(idx.tolist()):
            culture, first, last = self.name_codes[i].tolist()
            state = int(self.twosv[i])
            account = (int(account_hi[k]) << 64) | int(account_lo[k])
            member = (int(uuid_hi[k]) << 64) | int(uuid_lo[k])
            row = {
                "account_id": "557058:" + str(uuid.UUID(int=account, version=4)),
                "uuid": "{" + str(uuid.UUID(int=member, version=4)) + "}",
                "nickname": f"{ascii_name(culture, first, last)}{int(keys[k]) % 10_000}",
                "display_name": display_name(culture, first, last),
                "permission": PERMISSIONS[int(self.permission[i])],
                "has_2fa_enabled": None if state == UNKNOWN else state == ENABLED,
                "account_type": "user",
            }
            if self.app_user[i]:
                kind = APP_USER_KINDS[int(keys[k]) % len(APP_USER_KINDS)]
                row.update(account_type="app_user", kind=kind, has_2fa_enabled=False)
            out.append(row)
        return out

    def user(self, i: int) -> dict[str, object]:
        """`rows` for one listing position."""
        return self.rows([i])[0]

    def expected(self, order: np.ndarray | None = None) -> list[dict[str, object]]:
        """Ground truth rows in listing order (`order`: listing positions, default all)."""
        return self.rows(np.arange(self.size) if order is None else order)

    def find(self, identifier: str) -> int | None:
        """Listing position of a member by "{uuid}" or account_id, or None.

        Compares the identifier's 128 bits with every member's draws (no string table),
        ignoring the UUID version/variant bits that formatting overwrites."""
        if identifier.startswith("{") and identifier.endswith("}"):
            salts, text, field = UUID_SALTS, identifier[1:-1], "uuid"
        elif identifier.startswith("557058:"):
            salts, text, field = ACCOUNT_SALTS, identifier.removeprefix("557058:"), "account_id"
        else:
            return None
        try:
            value = uuid.UUID(text).int
        except ValueError:
            return None
        hi, lo = _U64(value >> 64), _U64(value & 0xFFFF_FFFF_FFFF_FFFF)
        match = ((_draw(self.person, salts[0]) & _HI_MASK) == (hi & _HI_MASK)) & (
            (_draw(self.person, salts[1]) & _LO_MASK) == (lo & _LO_MASK)
        )
        for position in np.flatnonzero(match).tolist():
            if self.user(position)[field] == identifier.lower():
                return position
        return None

    @cached_property
    def owner_positions(self) -> np.ndarray:
        return np.flatnonzero(self.permission == PERMISSIONS.index("owner"))


def population(spec: WorkspaceSpec, day: date, extra_slots: int = 0) -> Population:
    """The workspace on `day` (cached). `extra_slots` adds people after the last slot:
    the emulator uses them as members who join in the middle of a pagination."""
    return _population(spec, day.toordinal(), extra_slots)


@lru_cache(maxsize=64)
def _population(spec: WorkspaceSpec, ordinal: int, extra_slots: int) -> Population:
    d = ordinal - EPOCH_ORDINAL
    n = spec.members + extra_slots
    slot_key = _mix(np.arange(n, dtype=np.uint64) ^ _U64(spec.key))
    tenure = _span(slot_key, 1, 2_500, 4_000)
    phase = _span(slot_key, 2, 0, 6_500) % tenure
    generation = (d + phase) // tenure
    join = generation * tenure - phase  # <= d: the current occupant's first day
    person = _mix(slot_key ^ _mix(generation.astype(np.uint64)))

    category = _uniform(person, 10)
    onboard_pick, onboard_len = _uniform(person, 11), _uniform(person, 12)
    onboarding = np.where(
        onboard_pick < 0.5,
        0,
        np.where(
            onboard_pick < 0.85,
            1 + (onboard_len * 10).astype(np.int64),
            15 + (onboard_len * 20).astype(np.int64),
        ),
    )
    cycle = _span(person, 13, 4_000, 8_000)
    lapse_phase = _span(person, 14, 0, 12_000) % cycle
    lapse_pick, lapse_len = _uniform(person, 15), _uniform(person, 16)
    lapse = np.where(
        lapse_pick < 0.8,
        1 + (lapse_len * 10).astype(np.int64),
        15 + (lapse_len * 26).astype(np.int64),
    )
    lapsed = ((d + lapse_phase) % cycle) < lapse
    without_2sv = ((d - join) < onboarding) | lapsed
    twosv = np.where(
        category < 0.85,
        np.where(without_2sv, DISABLED, ENABLED),
        np.where(category < 0.95, DISABLED, UNKNOWN),
    ).astype(np.int8)

    role = _uniform(person, 20)
    permission = np.where(role < 0.02, 1, np.where(role < 0.03, 2, 0)).astype(np.int8)
    if n:
        permission[0] = 1  # every workspace has at least one owner
    app_user = _uniform(person, 40) < spec.app_user_share
    if n:
        app_user[0] = False  # the owner in slot 0 is a person
    names = _draw(person, 30)
    sizes = (len(CULTURES), NAMES_PER_CULTURE, NAMES_PER_CULTURE)
    name_codes = np.stack(
        [(names >> _U64(8 * k)) % _U64(size) for k, size in enumerate(sizes)], axis=1
    ).astype(np.int8)
    return Population(
        spec=spec,
        day=date.fromordinal(ordinal),
        person=person,
        join_day=join + EPOCH_ORDINAL,
        permission=permission,
        twosv=twosv,
        name_codes=name_codes,
        app_user=app_user,
    )
