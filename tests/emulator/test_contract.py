"""Contract test: emulator responses validate against Atlassian's published schemas.

The schemas are a subset of Atlassian's OpenAPI description, copied into
bitbucket_schemas.json (see its "_source" and the two documented "_adjustments").
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from emulator import Emulator

from .conftest import ADD_2FA

SCHEMAS = json.loads((Path(__file__).with_name("bitbucket_schemas.json")).read_text("utf-8"))


def resolve(node: Any, schemas: dict[str, Any]) -> Any:
    """Inline every local `#/components/schemas/<name>` $ref (these schemas are not recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].removeprefix("#/components/schemas/")
            return resolve(copy.deepcopy(schemas[name]), schemas)
        return {k: resolve(v, schemas) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [resolve(v, schemas) for v in node]
    return node


def validator(name: str) -> Draft202012Validator:
    schemas = SCHEMAS["components"]["schemas"]
    return Draft202012Validator(
        resolve(schemas[name], schemas), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def assert_valid(name: str, body: Any) -> None:
    errors = sorted(validator(name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_schema_subset_names_its_source() -> None:
    source = SCHEMAS["_source"]
    assert source["x-revision"] == "2ecc89e5fe81"
    assert source["file"] == "bitbucket-cloud-swagger.v3.json"
    assert "dac-static.atlassian.com" in source["url"]


def test_the_validator_rejects_a_wrong_shape() -> None:
    """Guards the contract test itself: a broken page must not validate."""
    bad = {"values": [{"type": "workspace_membership", "user": {"type": "user", "uuid": 5}}]}
    assert list(validator("paginated_workspace_memberships").iter_errors(bad))
    assert list(validator("paginated_workspace_memberships").iter_errors({"extra": 1}))


@pytest.mark.parametrize("path", ["workspaces/acme/members", "workspaces/acme/permissions"])
def test_listing_pages_match_the_schema(admin: httpx.Client, path: str) -> None:
    body = admin.get(path, params={"pagelen": 10, "fields": ADD_2FA}).json()
    assert body["next"]
    assert_valid("paginated_workspace_memberships", body)
    for value in body["values"]:
        assert_valid("workspace_membership", value)
        assert_valid("user", value["user"])
        assert_valid("workspace", value["workspace"])
    last = admin.get(path, params={"pagelen": 100}).json()
    assert_valid("paginated_workspace_memberships", last)


def test_null_2sv_state_is_allowed(emu: Emulator, admin: httpx.Client) -> None:
    unknown = [m for m in emu.expected_members("acme") if m["has_2fa_enabled"] is None]
    target = unknown[0] if unknown else emu.expected_members("acme")[0]
    body = admin.get(
        f"workspaces/acme/members/{target['uuid']}", params={"fields": "+user.has_2fa_enabled"}
    ).json()
    assert body["user"]["has_2fa_enabled"] == target["has_2fa_enabled"]
    assert_valid("workspace_membership", body)


def test_member_workspace_and_user_match_the_schema(emu: Emulator, admin: httpx.Client) -> None:
    target = emu.expected_members("acme")[0]
    assert_valid(
        "workspace_membership", admin.get(f"workspaces/acme/members/{target['uuid']}").json()
    )
    assert_valid("workspace", admin.get("workspaces/acme").json())
    me = admin.get("user").json()
    assert_valid("account", me)
    assert_valid("user", me)


def test_error_bodies_match_the_schema(emu: Emulator, admin: httpx.Client) -> None:
    scopeless = {"Authorization": f"Bearer {emu.scopeless_token}"}
    errors = [
        httpx.get(f"{emu.base_url}/workspaces/acme/members"),
        httpx.get(f"{emu.base_url}/workspaces/acme/members", headers=scopeless),
        admin.get("workspaces/nope"),
        admin.get("workspaces/acme/members", params={"pagelen": "abc"}),
    ]
    assert [r.status_code for r in errors] == [401, 403, 404, 400]
    for response in errors:
        assert_valid("error", response.json())
