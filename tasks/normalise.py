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

from tasks.bitbucket.models import MEMBERS, PERMISSIONS, RawPage

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


def usable_values(pages: Iterable[RawPage], listing: str) -> Iterable[tuple[RawPage, dict]]:
    """Yield (page, value) for every membership in successful, parseable pages of a listing.

    Failed attempts (429, 5xx, truncated JSON) are kept as evidence but carry no members.
    """
    for page in pages:
        if page.listing != listing or page.status_code != 200:
            continue
        try:
            document = orjson.loads(page.body)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(document, dict):
            continue
        values = document.get("values")
        if not isinstance(values, list):
            continue
        for value in values:
            if isinstance(value, dict) and isinstance(value.get("user"), dict):
                yield page, value


def permissions_by_member(pages: Iterable[RawPage]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for _page, value in usable_values(pages, PERMISSIONS):
        key = member_key(value["user"])
        if key and key not in roles and isinstance(value.get("permission"), str):
            roles[key] = value["permission"]
    return roles


def observations_from_pages(workspace: str, pages: list[RawPage]) -> pd.DataFrame:
    """One row per distinct member (first sighting wins), roles joined from `/permissions`."""
    roles = permissions_by_member(pages)
    seen: set[str] = set()
    rows: dict[str, list] = {column: [] for column in OBSERVATION_COLUMNS}
    for page, value in usable_values(pages, MEMBERS):
        user = value["user"]
        key = member_key(user)
        if key is None or key in seen:
            continue
        seen.add(key)
        has_2fa = user.get("has_2fa_enabled")
        has_2fa = has_2fa if isinstance(has_2fa, bool) else None
        rows["workspace"].append(workspace)
        rows["observed_at"].append(page.fetched_at)
        rows["account_id"].append(user.get("account_id"))
        rows["uuid"].append(user.get("uuid"))
        rows["nickname"].append(user.get("nickname"))
        rows["display_name"].append(user.get("display_name"))
        rows["permission"].append(roles.get(key))
        rows["has_2fa_enabled"].append(has_2fa)
        rows["two_step_state"].append(two_step_state(has_2fa))
    frame = pd.DataFrame(rows, columns=OBSERVATION_COLUMNS)
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True)
    frame["has_2fa_enabled"] = frame["has_2fa_enabled"].astype("boolean")
    for column in ("workspace", "account_id", "uuid", "nickname", "display_name", "permission"):
        frame[column] = frame[column].astype("string")
    frame["two_step_state"] = frame["two_step_state"].astype("string")
    return frame
