"""Raw API pages → one observation row per workspace member.

This is a pure function of the stored raw pages: the evidence store calls it again on
what it kept (`rederive`) and compares, so it must not read anything else (no clock, no
config, no network).

Besides the Bitbucket columns, each row carries its identity columns (IDENTITY_COLUMNS):
the member's `account_type` and `kind` (Bitbucket's user.type and user.kind), and what the
run's organization directory pages say about the member's account_id (`in_directory` is
NULL when the run holds no directory page).

Usage::

    frame = observations_from_pages("acme", extract.pages)
    frame[["nickname", "two_step_state", "account_type", "directory_claim_status"]]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

import orjson
import pandas as pd

from tasks.bitbucket.models import RawPage
from tasks.identity import DirectoryEntry, directory_index
from tasks.vocabulary import Listing, TwoStepState

OBSERVATION_COLUMNS = [
    "workspace",
    "observed_at",
    "account_id",
    "uuid",
    "nickname",
    "display_name",
    "permission",
    "has_2fa_enabled",
    "two_step_state",
]
IDENTITY_COLUMNS = [
    "account_type",
    "kind",
    "in_directory",
    "directory_account_status",
    "directory_claim_status",
    "directory_mfa_enabled",
    "directory_email_domain",
]
STRING_COLUMNS = (
    "workspace",
    "account_id",
    "uuid",
    "nickname",
    "display_name",
    "permission",
    "account_type",
    "kind",
    "directory_account_status",
    "directory_claim_status",
    "directory_email_domain",
)
NOT_LISTED = DirectoryEntry(None, None, None, None)


def two_step_state(has_2fa_enabled: object) -> TwoStepState:
    """The one 2SV-state rule: only a real boolean counts; null, absent or anything else is
    `unknown`, never enabled."""
    if has_2fa_enabled is True:
        return TwoStepState.ENABLED
    if has_2fa_enabled is False:
        return TwoStepState.DISABLED
    return TwoStepState.UNKNOWN


def member_key(user: dict) -> str | None:
    """The one member-key rule: account_id, falling back to uuid (bots and apps may lack one).

    A JSON array or object there is no key at all (it could not be stored, nor compared);
    extraction marks such a run incomplete, and its pages are still kept.
    """
    key = user.get("account_id") or user.get("uuid")
    return None if isinstance(key, list | dict) else key


def usable_pages(pages: Iterable[RawPage], listing: Listing) -> Iterable[tuple[RawPage, list]]:
    """Yield (page, values) for successful, parseable pages of a listing.

    Failed attempts (429, 5xx, truncated JSON) are kept as evidence but carry no members.
    """
    for page in pages:
        if page.listing != listing or page.status_code != 200:
            continue
        try:
            document = orjson.loads(page.body)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict) and isinstance(values := document.get("values"), list):
            yield page, values


def users(values: list) -> Iterable[tuple[dict, dict]]:
    """(membership, user) for each membership that is a dict with a `user` dict."""
    for value in values:
        if isinstance(value, dict) and isinstance(user := value.get("user"), dict):
            yield value, user


_UNSEEN = object()


class PageMemo:
    """What each page body yielded, kept by the body's SHA-256 (least recently used out).

    The same body always yields the same members, roles and directory entries, so `bb2sv
    verify`, re-deriving a year of daily runs that repeat most of their pages, parses each
    distinct body once. Only for pages whose `sha256` is the hash of their body (RawPage
    computes it when not given; verify gives it only for bodies it re-hashed).
    """

    def __init__(self, capacity: int = 4_096) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, tuple] = OrderedDict()

    def get(self, page: RawPage, what: str, extract: Callable[[RawPage], tuple]) -> tuple:
        key = (what, page.listing, page.status_code, page.sha256)
        found = self._items.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._items[key] = extract(page)
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return found


def _extracted(memo: PageMemo | None, page: RawPage, what: str, extract) -> tuple:
    return extract(page) if memo is None else memo.get(page, what, extract)


def page_roles(page: RawPage) -> tuple[tuple[str, str], ...]:
    """(member key, permission) of each membership of one /permissions page, in order."""
    key_of = member_key
    return tuple(
        (key, permission)
        for _page, values in usable_pages([page], Listing.PERMISSIONS)
        for value, user in users(values)
        if (key := key_of(user)) and isinstance(permission := value.get("permission"), str)
    )


def permissions_by_member(pages: Iterable[RawPage], memo: PageMemo | None = None) -> dict[str, str]:
    """member key → permission from the /permissions listing (first sighting wins)."""
    roles: dict[str, str] = {}
    for page in pages:
        if page.listing == Listing.PERMISSIONS and page.status_code == 200:
            for key, permission in _extracted(memo, page, "roles", page_roles):
                roles.setdefault(key, permission)
    return roles


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def page_members(page: RawPage) -> tuple[tuple, ...]:
    """(key, account_id, uuid, nickname, display_name, has_2fa_enabled as stored,
    two_step_state, account_type, kind) of each member of one members page, in order."""
    key_of, state_of, text = member_key, two_step_state, _text
    members = []
    for _page, values in usable_pages([page], Listing.MEMBERS):
        for _value, user in users(values):
            key = key_of(user)
            if key is None:
                continue
            state = state_of(has_2fa := user.get("has_2fa_enabled"))
            members.append(
                (
                    key,
                    user.get("account_id"),
                    user.get("uuid"),
                    user.get("nickname"),
                    user.get("display_name"),
                    None if state is TwoStepState.UNKNOWN else has_2fa,
                    state.value,
                    text(user.get("type")),
                    text(user.get("kind")),
                )
            )
    return tuple(members)


def observations_from_pages(
    workspace: str, pages: list[RawPage], *, memo: PageMemo | None = None
) -> pd.DataFrame:
    """One row per distinct member (first sighting wins), roles joined from `/permissions`,
    directory facts joined on account_id from the run's directory pages.

    `memo`: pages already seen by body hash (`PageMemo`); the result is the same without."""
    roles = permissions_by_member(pages, memo)
    directory = directory_index(pages, memo)
    listed = {} if directory is None else directory
    seen: set[str] = set()
    rows: list[tuple] = []  # OBSERVATION_COLUMNS after workspace, then IDENTITY_COLUMNS
    # Bound locally: this loop runs once per member per run, at load and again in verify.
    add, role_of, entry_of, no_directory = rows.append, roles.get, listed.get, directory is None
    for page in pages:
        if page.listing != Listing.MEMBERS or page.status_code != 200:
            continue
        fetched_at = page.fetched_at
        for key, account_id, *user, account_type, kind in _extracted(
            memo, page, "members", page_members
        ):
            if key in seen:
                continue
            seen.add(key)
            entry = entry_of(account_id, NOT_LISTED)
            add(
                (
                    fetched_at,
                    account_id,
                    *user[:3],
                    role_of(key),
                    *user[3:],
                    account_type,
                    kind,
                    None if no_directory else entry is not NOT_LISTED,
                    entry.account_status,
                    entry.claim_status,
                    entry.mfa_enabled,
                    entry.email_domain,
                )
            )
    names = OBSERVATION_COLUMNS[1:] + IDENTITY_COLUMNS
    columns = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)) if rows else {}
    frame = pd.DataFrame(
        {"workspace": [workspace] * len(rows), **{n: columns.get(n, []) for n in names}},
        columns=OBSERVATION_COLUMNS + IDENTITY_COLUMNS,
    )
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    for column in ("has_2fa_enabled", "in_directory", "directory_mfa_enabled"):
        frame[column] = frame[column].astype("boolean")
    for column in (*STRING_COLUMNS, "two_step_state"):
        frame[column] = frame[column].astype("string")
    return frame
