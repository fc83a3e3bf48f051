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

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from tasks.bitbucket.models import RawPage
from tasks.identity import DirectoryEntry, directory_index
from tasks.version import release_of
from tasks.vocabulary import Listing, TwoStepState

R = TypeVar("R")

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
NOT_LISTED = DirectoryEntry(None, None, None, None)
_UTC_US = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def roles_of(
    roles: Mapping[str, R],
    keys: Sequence[str],
    uuids: Callable[[list[int]], Sequence[object]] | None,
) -> list[R | None]:
    """The one rule joining the /permissions listing to members: each member's entry under
    its key (account_id, else uuid), else its entry under its uuid: an entry without an
    account_id, as in Atlassian's own example of that listing, has its uuid for key.
    `roles`: entries by their `member_key`; `uuids(places)`: the uuids of the members at
    those places of `keys`, asked for only for the members whose key finds no entry; None:
    by key alone, the rule of runs stored before bb2sv 0.2 (`joins_roles_by_uuid`)."""
    found = list(map(roles.get, keys))
    if uuids is not None and None in found:
        places = [index for index, role in enumerate(found) if role is None]
        for index, uuid in zip(places, uuids(places), strict=True):
            if isinstance(uuid, str):
                found[index] = roles.get(uuid)
    return found


def joins_roles_by_uuid(tool_version: str | None) -> bool:
    """Whether a run stored by bb2sv `tool_version` joined roles by uuid too (since 0.2):
    a run is stored, and re-derived by verify, by the rule of the version that stored it.
    A version that does not read as one (a source tree never installed) is this one."""
    release = release_of(tool_version)
    return release is None or release >= (0, 2)


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

    def __init__(self, capacity: int | None = 4_096) -> None:
        self.capacity = capacity  # None: keep everything (one run's pages)
        self._items: OrderedDict[tuple, tuple] = OrderedDict()
        self._roles: tuple[tuple, dict] | None = None  # the last run's roles, merged

    def __len__(self) -> int:
        return len(self._items)

    def merged_roles(self, listed: list[RawPage], merge: Callable[[], dict]) -> dict:
        """The roles of a run's permissions pages merged (`merge()`), kept for the next run
        while its pages are the same bodies."""
        key = tuple(page.sha256 for page in listed)
        if self._roles is None or self._roles[0] != key:
            self._roles = (key, merge())
        return self._roles[1]

    def get(self, page: RawPage, what: str, extract: Callable[[RawPage], tuple]) -> tuple:
        key = (what, page.listing, page.status_code, page.sha256)
        found = self._items.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._items[key] = extract(page)
            if self.capacity is not None and len(self._items) > self.capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return found


def derive_page(memo: PageMemo, page: RawPage) -> None:
    """Put into `memo` what `observations_table` will ask of this page (its members, or its
    roles), so that work is done once, when the page arrives."""
    if page.status_code != 200 or not page.sha256_of_body:
        return  # only bodies hashed here may be keyed by their hash
    if page.listing == Listing.MEMBERS:
        memo.get(page, "members", page_members)
    elif page.listing == Listing.PERMISSIONS:
        memo.get(page, "roles", page_roles)


class PageDeriver:
    """Normalises each page as it arrives, in one thread of its own, while the listings wait
    for their next page: the store then finds every page's members and roles in `memo`.

    Usage::

        deriver = PageDeriver()
        deriver.add(page)                  # for each page, as it arrives (returns at once)
        memo = deriver.finish()            # waits for the pages given; a PageMemo
        observations_table("acme", pages, memo=memo)   # the same rows as without the memo

    It changes no result, only when the work is done: a page it did not get to is
    normalised by `observations_table` as before.
    """

    def __init__(self) -> None:
        self.memo = PageMemo(capacity=None)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bb2sv-normalise")

    def add(self, page: RawPage) -> None:
        self._pool.submit(derive_page, self.memo, page)

    def finish(self, *, cancel: bool = False) -> PageMemo:
        """The memo, once the pages given are done (`cancel`: drop those not started)."""
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        return self.memo


def _extracted(memo: PageMemo | None, page: RawPage, what: str, extract) -> tuple:
    return extract(page) if memo is None else memo.get(page, what, extract)


def page_roles(page: RawPage) -> dict[str, str]:
    """member key → permission on one /permissions page (first sighting wins). Shared
    through the memo: never changed."""
    key_of = member_key
    pairs = [
        (key, permission)
        for _page, values in usable_pages([page], Listing.PERMISSIONS)
        for value, user in users(values)
        if (key := key_of(user)) and isinstance(permission := value.get("permission"), str)
    ]
    return dict(reversed(pairs))  # a later pair is overwritten by an earlier one


def permissions_by_member(pages: Iterable[RawPage], memo: PageMemo | None = None) -> dict[str, str]:
    """member key → permission from the /permissions listing (first sighting wins). With a
    memo, the dict of the run before is given again (not to be changed) when this run's
    permissions pages are the same bodies: a year of daily runs repeats them for weeks."""
    listed = [
        page for page in pages if page.listing == Listing.PERMISSIONS and page.status_code == 200
    ]
    if memo is None:
        return _merged_roles(listed, None)
    return memo.merged_roles(listed, lambda: _merged_roles(listed, memo))


def _merged_roles(listed: list[RawPage], memo: PageMemo | None) -> dict[str, str]:
    roles: dict[str, str] = {}
    for page in reversed(listed):  # pages in reverse: an earlier page's role wins
        roles.update(_extracted(memo, page, "roles", page_roles))
    return roles


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class PageMembers:
    """The members of one members page, in order: their keys (as Python values, for the
    first-sighting rule) and MEMBER_FIELDS as Arrow columns."""

    keys: tuple
    columns: pa.Table

    @property
    def size(self) -> int:
        return len(self.keys)


# The identity and 2SV columns a members page gives, per member.
MEMBER_FIELDS = (
    "account_id",
    "uuid",
    "nickname",
    "display_name",
    "has_2fa_enabled",
    "two_step_state",
    "account_type",
    "kind",
)


def page_members(page: RawPage) -> PageMembers:
    """Each member (with a key) of one members page, in order."""
    key_of, state_of, text = member_key, two_step_state, _text
    keys, rows = [], []
    for _page, values in usable_pages([page], Listing.MEMBERS):
        for _value, user in users(values):
            key = key_of(user)
            if key is None:
                continue
            state = state_of(has_2fa := user.get("has_2fa_enabled"))
            keys.append(key)
            rows.append(
                (
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
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(MEMBER_FIELDS)
    arrays = [
        pa.array(column, pa.bool_()) if name == "has_2fa_enabled" else _strings(column)
        for name, column in zip(MEMBER_FIELDS, columns, strict=True)
    ]
    return PageMembers(tuple(keys), pa.table(dict(zip(MEMBER_FIELDS, arrays, strict=True))))


def _strings(values: tuple) -> pa.Array:
    """Text values as an Arrow string column; anything else JSON gave (a number, a list)
    as pandas' `astype("string")` writes it."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        converted = pd.Series(values, dtype=object).astype("string")
        return pa.array(converted).cast(pa.string())


def observations_table(
    workspace: str,
    pages: list[RawPage],
    *,
    memo: PageMemo | None = None,
    roles_by_uuid: bool = True,
) -> pa.Table:
    """One row per distinct member (first sighting wins), roles joined from `/permissions`
    (`roles_of`), directory facts joined on account_id from the run's directory pages: the
    columns OBSERVATION_COLUMNS + IDENTITY_COLUMNS as Arrow (observed_at in µs, UTC).

    Built page by page (a page's members are Arrow columns), so a run costs a few
    operations per page, not per member. `memo`: pages already seen by body hash
    (`PageMemo`); the result is the same without. `roles_by_uuid`: False for a run stored
    before bb2sv 0.2 (`joins_roles_by_uuid`)."""
    roles = permissions_by_member(pages, memo)
    directory = directory_index(pages, memo)
    parts: list[tuple[RawPage, PageMembers]] = [
        (page, _extracted(memo, page, "members", page_members))
        for page in pages
        if page.listing == Listing.MEMBERS and page.status_code == 200
    ]
    keys = list(itertools.chain.from_iterable(part.keys for _page, part in parts))
    columns = pa.concat_tables([part.columns for _page, part in parts]) if parts else None
    if columns is None:
        columns = page_members(RawPage(Listing.MEMBERS, "", 200, _EPOCH, b"")).columns
    counts = [part.size for _page, part in parts]
    # One timestamp per page, repeated for its members in Arrow (not one datetime per member).
    fetched = pa.array([page.fetched_at for page, _ in parts], _UTC_US)
    observed_at = fetched.take(np.repeat(np.arange(len(parts)), counts))
    if len(set(keys)) != len(keys):  # a member listed twice: its first sighting counts
        seen: set = set()
        first = [not (key in seen or seen.add(key)) for key in keys]
        mask = pa.array(first, pa.bool_())
        columns, observed_at = columns.filter(mask), observed_at.filter(mask)
        keys = [key for key, keep in zip(keys, first, strict=True) if keep]
    rows = len(keys)
    if directory is None:  # not read: every directory column NULL
        status = claim = domain = pa.nulls(rows, pa.string())
        in_directory = mfa = pa.nulls(rows, pa.bool_())
    else:
        entries = [directory.get(a, NOT_LISTED) for a in columns["account_id"].to_pylist()]
        in_directory = pa.array([entry is not NOT_LISTED for entry in entries], pa.bool_())
        status = _strings(tuple(entry.account_status for entry in entries))
        claim = _strings(tuple(entry.claim_status for entry in entries))
        mfa = pa.array([entry.mfa_enabled for entry in entries], pa.bool_())
        domain = _strings(tuple(entry.email_domain for entry in entries))

    def uuids_at(places: list[int]) -> list:
        return columns["uuid"].take(pa.array(places, pa.int64())).to_pylist()

    permission = roles_of(roles, keys, uuids_at if roles_by_uuid else None)
    table = {
        "workspace": pa.array([workspace] * rows, pa.string()),
        "observed_at": observed_at,
        **{name: columns[name] for name in ("account_id", "uuid", "nickname", "display_name")},
        "permission": _strings(tuple(permission)),
        **{name: columns[name] for name in MEMBER_FIELDS[4:]},
        "in_directory": in_directory,
        "directory_account_status": status,
        "directory_claim_status": claim,
        "directory_mfa_enabled": mfa,
        "directory_email_domain": domain,
    }
    return pa.table({name: table[name] for name in OBSERVATION_COLUMNS + IDENTITY_COLUMNS})


def observations_from_pages(
    workspace: str, pages: list[RawPage], *, memo: PageMemo | None = None
) -> pd.DataFrame:
    """`observations_table` as a DataFrame: text as `string`, booleans as `boolean`,
    observed_at as UTC datetimes."""
    frame = observations_table(workspace, pages, memo=memo).to_pandas(
        types_mapper={pa.string(): pd.StringDtype(), pa.bool_(): pd.BooleanDtype()}.get
    )
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    return frame
