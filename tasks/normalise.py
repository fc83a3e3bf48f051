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

from collections.abc import Iterable

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
    """The one member-key rule: account_id, falling back to uuid (bots and apps may lack one)."""
    return user.get("account_id") or user.get("uuid")


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


def permissions_by_member(pages: Iterable[RawPage]) -> dict[str, str]:
    """member key → permission from the /permissions listing (first sighting wins)."""
    roles: dict[str, str] = {}
    key_of = member_key  # bound locally: this loop runs once per member per run
    for _page, values in usable_pages(pages, Listing.PERMISSIONS):
        for value, user in users(values):
            key = key_of(user)
            if key and key not in roles and isinstance(permission := value.get("permission"), str):
                roles[key] = permission
    return roles


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def observations_from_pages(workspace: str, pages: list[RawPage]) -> pd.DataFrame:
    """One row per distinct member (first sighting wins), roles joined from `/permissions`,
    directory facts joined on account_id from the run's directory pages."""
    roles = permissions_by_member(pages)
    directory = directory_index(pages)
    listed = {} if directory is None else directory
    seen: set[str] = set()
    rows: list[tuple] = []  # OBSERVATION_COLUMNS after workspace, then IDENTITY_COLUMNS
    # Bound locally: this loop runs once per member per run, at load and again in verify.
    key_of, state_of, add, text = member_key, two_step_state, rows.append, _text
    for page, values in usable_pages(pages, Listing.MEMBERS):
        for _value, user in users(values):
            key = key_of(user)
            if key is None or key in seen:
                continue
            seen.add(key)
            state = state_of(has_2fa := user.get("has_2fa_enabled"))
            account_id = user.get("account_id")
            entry = listed.get(account_id, NOT_LISTED)
            add(
                (
                    page.fetched_at,
                    account_id,
                    user.get("uuid"),
                    user.get("nickname"),
                    user.get("display_name"),
                    roles.get(key),
                    None if state is TwoStepState.UNKNOWN else has_2fa,
                    state.value,
                    text(user.get("type")),
                    text(user.get("kind")),
                    None if directory is None else entry is not NOT_LISTED,
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
