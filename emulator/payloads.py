"""JSON shapes of Bitbucket Cloud objects (OpenAPI schemas `workspace`, `user`,
`workspace_membership`, `error`) built from `Population.rows()`.

    origin = "http://127.0.0.1:8000"
    membership(pop.user(0), slug="acme", origin=origin, ws=workspace_ref(spec, origin),
               with_2fa=True, with_permission=False)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from emulator.world import WorkspaceSpec, uuid_from

JSON = dict[str, Any]
AVATAR_HOST = "https://avatars.example.invalid"


def _link(href: str) -> JSON:
    return {"href": href}


def error_body(message: str, detail: object = None) -> JSON:
    """`{"type": "error", "error": {"message": ..., "detail": ...}}` (detail only when set)."""
    error: JSON = {"message": message}
    if detail is not None:
        error["detail"] = detail
    return {"type": "error", "error": error}


def workspace_ref(spec: WorkspaceSpec, origin: str) -> JSON:
    """The short workspace object embedded in each membership."""
    return {
        "type": "workspace",
        "uuid": spec.uuid,
        "slug": spec.slug,
        "name": spec.display_name,
        "links": {
            "self": _link(f"{origin}/2.0/workspaces/{spec.slug}"),
            "html": _link(f"https://bitbucket.org/{spec.slug}/"),
            "avatar": _link(f"{AVATAR_HOST}/workspaces/{spec.slug}.png"),
        },
    }


def workspace_full(spec: WorkspaceSpec, origin: str) -> JSON:
    """GET /2.0/workspaces/{ws}."""
    api = f"{origin}/2.0"
    body = workspace_ref(spec, origin)
    body["links"].update(
        members=_link(f"{api}/workspaces/{spec.slug}/members"),
        owners=_link(f"{api}/workspaces/{spec.slug}/members?q=permission%3D%22owner%22"),
        projects=_link(f"{api}/workspaces/{spec.slug}/projects"),
        repositories=_link(f"{api}/repositories/{spec.slug}"),
        snippets=_link(f"{api}/snippets/{spec.slug}"),
    )
    body.update(
        is_private=True,
        is_privacy_enforced=False,
        forking_mode="allow_forks",
        created_on="2019-03-14T09:26:53.000000+00:00",
        updated_on="2024-01-08T16:02:11.000000+00:00",
    )
    return body


def user_object(user: JSON, origin: str, *, with_2fa: bool) -> JSON:
    """A `user` object from a `Population.user()` row; `has_2fa_enabled` only if asked.

    A row whose `account_type` is not `user` (an `app_user`) gives that type, with its `kind`
    and no nickname. A row without an `account_id` key (an app or bot, known only by uuid)
    or without a `has_2fa_enabled` key (as a non-admin caller sees it) gives an object
    without that field; world rows always carry both keys."""
    quoted = str(user["uuid"]).replace("{", "%7B").replace("}", "%7D")
    account_type = user.get("account_type", "user")
    body: JSON = {"type": account_type, "uuid": user["uuid"]}
    if "account_id" in user:
        body["account_id"] = user["account_id"]
    if account_type == "user":  # an app user has a kind and no nickname
        body["nickname"] = user["nickname"]
    else:
        body["kind"] = user.get("kind")
    body.update(
        display_name=user["display_name"],
        account_status="active",
        links={
            "self": _link(f"{origin}/2.0/users/{quoted}"),
            "html": _link(f"https://bitbucket.org/{quoted}/"),
            "avatar": _link(f"{AVATAR_HOST}/users/{quoted}.png"),
        },
    )
    if with_2fa and "has_2fa_enabled" in user:
        body["has_2fa_enabled"] = user["has_2fa_enabled"]
    return body


def membership(
    user: JSON, *, slug: str, origin: str, ws: JSON, with_2fa: bool, with_permission: bool
) -> JSON:
    """One `workspace_membership` from a `Population.rows()` row (plus `permission` on the
    /permissions listing)."""
    quoted = str(user["uuid"]).replace("{", "%7B").replace("}", "%7D")
    body: JSON = {
        "type": "workspace_membership",
        "links": {"self": _link(f"{origin}/2.0/workspaces/{slug}/members/{quoted}")},
        "user": user_object(user, origin, with_2fa=with_2fa),
        "workspace": ws,
    }
    if with_permission:
        body["permission"] = user["permission"]
    return body


def caller_account(nickname: str, display_name: str, origin: str) -> JSON:
    """GET /2.0/user for an emulator credential (a stable fake account)."""
    key = int.from_bytes(hashlib.blake2b(nickname.encode(), digest_size=8).digest(), "big")
    user = {
        "uuid": "{" + uuid_from(key, 201, 202) + "}",
        "account_id": "557058:" + uuid_from(key, 203, 204),
        "nickname": nickname,
        "display_name": display_name,
    }
    body = user_object(user, origin, with_2fa=False)
    body["created_on"] = datetime(2020, 1, 2, tzinfo=UTC).isoformat()
    return body


def listing_values(
    rows: Iterable[JSON], spec: WorkspaceSpec, origin: str, *, with_2fa: bool, with_permission: bool
) -> list[JSON]:
    """The `values` of one listing page: a `workspace_membership` per row, in order."""
    ws = workspace_ref(spec, origin)
    return [
        membership(
            row,
            slug=spec.slug,
            origin=origin,
            ws=ws,
            with_2fa=with_2fa,
            with_permission=with_permission,
        )
        for row in rows
    ]
