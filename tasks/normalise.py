"""Raw API pages → one observation row per workspace member.

This is a pure function of the stored raw pages: the evidence store calls it again on
what it kept (`rederive`) and compares, so it must not read anything else (no clock, no
config, no network).

Usage::

    frame = observations_from_pages("acme", extract.pages)
    frame[["nickname", "two_step_state"]]
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pandas as pd

from tasks.bitbucket.models import RawPage
from tasks.vocabulary import Listing

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

TWO_STEP_STATES = ("enabled", "disabled", "unknown")
_STATE_OF = {True: "enabled", False: "disabled", None: "unknown"}


def two_step_state(has_2fa_enabled: object) -> str:
    """Three-valued 2SV state. Only a real boolean counts; null or absent is `unknown`."""
    if has_2fa_enabled is True:
        return "enabled"
    if has_2fa_enabled is False:
        return "disabled"
    return "unknown"


def member_key(user: dict) -> str | None:
    """Members are joined on account_id, falling back to uuid (bots and apps may lack one)."""
    return user.get("account_id") or user.get("uuid")


def usable_pages(pages: Iterable[RawPage], listing: str) -> Iterable[tuple[RawPage, list]]:
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


def usable_values(pages: Iterable[RawPage], listing: str) -> Iterable[tuple[RawPage, dict]]:
    """Yield (page, value) for every membership (a dict with a `user` dict) in usable pages."""
    for page, values in usable_pages(pages, listing):
        for value in values:
            if isinstance(value, dict) and isinstance(value.get("user"), dict):
                yield page, value


def permissions_by_member(pages: Iterable[RawPage]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for _page, values in usable_pages(pages, Listing.PERMISSIONS):
        # Inlined (not usable_values/member_key): this loop runs once per member per run.
        for value in values:
            if not isinstance(value, dict):
                continue
            user = value.get("user")
            if not isinstance(user, dict):
                continue
            key = user.get("account_id") or user.get("uuid")
            if key and key not in roles:
                permission = value.get("permission")
                if isinstance(permission, str):
                    roles[key] = permission
    return roles


def observations_from_pages(workspace: str, pages: list[RawPage]) -> pd.DataFrame:
    """One row per distinct member (first sighting wins), roles joined from `/permissions`."""
    roles = permissions_by_member(pages)
    seen: set[str] = set()
    observed_at: list = []
    account_ids: list = []
    uuids: list = []
    nicknames: list = []
    display_names: list = []
    permissions: list = []
    has_2fa_values: list = []
    # One pass, inlined (not usable_values/member_key/two_step_state): this loop runs once
    # per member per run, at load and again in verify, so per-call overhead matters.
    for page, values in usable_pages(pages, Listing.MEMBERS):
        fetched_at = page.fetched_at
        for value in values:
            if not isinstance(value, dict):
                continue
            user = value.get("user")
            if not isinstance(user, dict):
                continue
            account_id = user.get("account_id")
            uuid = user.get("uuid")
            key = account_id or uuid
            if key is None or key in seen:
                continue
            seen.add(key)
            has_2fa = user.get("has_2fa_enabled")
            observed_at.append(fetched_at)
            account_ids.append(account_id)
            uuids.append(uuid)
            nicknames.append(user.get("nickname"))
            display_names.append(user.get("display_name"))
            permissions.append(roles.get(key))
            has_2fa_values.append(has_2fa if has_2fa is True or has_2fa is False else None)
    rows = {
        "workspace": [workspace] * len(observed_at),
        "observed_at": observed_at,
        "account_id": account_ids,
        "uuid": uuids,
        "nickname": nicknames,
        "display_name": display_names,
        "permission": permissions,
        "has_2fa_enabled": has_2fa_values,
        "two_step_state": [_STATE_OF[value] for value in has_2fa_values],
    }
    frame = pd.DataFrame(rows, columns=OBSERVATION_COLUMNS)
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    frame["has_2fa_enabled"] = frame["has_2fa_enabled"].astype("boolean")
    for column in ("workspace", "account_id", "uuid", "nickname", "display_name", "permission"):
        frame[column] = frame[column].astype("string")
    frame["two_step_state"] = frame["two_step_state"].astype("string")
    return frame
