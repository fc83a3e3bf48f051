"""Endpoint shapes, authentication, field gating and pagination over real loopback HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from emulator import Emulator

from .conftest import ADD_2FA, walk


def test_members_listing_matches_ground_truth(emu: Emulator, admin: httpx.Client) -> None:
    pages = walk(admin, "workspaces/acme/members", {"pagelen": 10, "fields": ADD_2FA})
    assert [len(p["values"]) for p in pages] == [10, 10, 5]
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert all(p["size"] == 25 and p["pagelen"] == 10 for p in pages)
    users = [v["user"] for p in pages for v in p["values"]]
    expected = emu.expected_members("acme")
    assert [u["account_id"] for u in users] == [e["account_id"] for e in expected]
    assert [u["has_2fa_enabled"] for u in users] == [e["has_2fa_enabled"] for e in expected]
    assert [u["display_name"] for u in users] == [e["display_name"] for e in expected]
    value = pages[0]["values"][0]
    assert value["type"] == "workspace_membership"
    assert value["workspace"]["slug"] == "acme"
    assert "permission" not in value


def test_has_2fa_enabled_only_when_asked_and_admin(emu: Emulator, admin, member) -> None:
    def users(client: httpx.Client, params: dict) -> list[dict]:
        body = client.get("workspaces/acme/members", params={"pagelen": 100, **params}).json()
        return [v["user"] for v in body["values"]]

    assert all("has_2fa_enabled" not in u for u in users(admin, {}))
    assert all("has_2fa_enabled" in u for u in users(admin, {"fields": ADD_2FA}))
    assert all("has_2fa_enabled" not in u for u in users(member, {"fields": ADD_2FA}))
    # An unencoded '+' decodes to a space: Bitbucket does not read it as "add this field".
    url = f"{emu.base_url}/workspaces/acme/members?fields=+values.user.has_2fa_enabled"
    assert all("has_2fa_enabled" not in v["user"] for v in admin.get(url).json()["values"])
    states = {e["has_2fa_enabled"] for e in emu.expected_members("acme")}
    assert True in states and (False in states or None in states)


def test_pagelen_default_cap_and_bad_values(emu: Emulator, admin: httpx.Client) -> None:
    assert admin.get("workspaces/acme/members").json()["pagelen"] == 10
    capped = admin.get("workspaces/acme/members", params={"pagelen": 500}).json()
    assert capped["pagelen"] == 100 and len(capped["values"]) == 25 and "next" not in capped
    for bad in ("abc", "0", "-3"):
        response = admin.get("workspaces/acme/members", params={"pagelen": bad})
        assert response.status_code == 400
        assert response.json()["type"] == "error"
        assert bad in response.json()["error"]["message"]
    assert admin.get("workspaces/acme/members", params={"page": "x"}).status_code == 400


def test_next_is_absolute_and_keeps_the_query(emu: Emulator, admin: httpx.Client) -> None:
    body = admin.get("workspaces/acme/members", params={"pagelen": 7, "fields": ADD_2FA}).json()
    url = urlsplit(body["next"])
    assert f"{url.scheme}://{url.netloc}" == emu.base_url.removesuffix("/2.0")
    assert url.path == "/2.0/workspaces/acme/members"
    assert "%2Bvalues.user.has_2fa_enabled" in url.query
    assert parse_qs(url.query) == {"pagelen": ["7"], "fields": [ADD_2FA], "page": ["2"]}
    pages = walk(admin, "workspaces/acme/members", {"pagelen": 7})
    assert "next" not in pages[-1] and len(pages) == 4


def test_permissions_listing_and_owner_filter(emu: Emulator, admin: httpx.Client) -> None:
    values = admin.get("workspaces/acme/permissions", params={"pagelen": 100}).json()["values"]
    expected = emu.expected_members("acme")
    assert [v["permission"] for v in values] == [e["permission"] for e in expected]
    owners = walk(admin, "workspaces/acme/permissions", {"q": 'permission="owner"', "pagelen": 1})
    owner_ids = [v["user"]["account_id"] for p in owners for v in p["values"]]
    assert owner_ids == [e["account_id"] for e in expected if e["permission"] == "owner"]
    assert owners[0]["size"] == len(owner_ids) >= 1
    assert "q=permission%3D%22owner%22" in owners[0].get("next", "q=permission%3D%22owner%22")
    bad = admin.get("workspaces/acme/permissions", params={"q": "user.email IN (x)"})
    assert bad.status_code == 400


def test_single_member_by_uuid_or_account_id(emu: Emulator, admin, member) -> None:
    target = emu.expected_members("acme")[3]
    by_uuid = admin.get(f"workspaces/acme/members/{target['uuid']}")
    by_account = admin.get(f"workspaces/acme/members/{target['account_id']}")
    assert by_uuid.status_code == by_account.status_code == 200
    assert by_uuid.json() == by_account.json()
    assert by_uuid.json()["user"]["nickname"] == target["nickname"]
    assert "has_2fa_enabled" not in by_uuid.json()["user"]
    asked = admin.get(
        f"workspaces/acme/members/{target['uuid']}", params={"fields": "+user.has_2fa_enabled"}
    )
    assert asked.json()["user"]["has_2fa_enabled"] == target["has_2fa_enabled"]
    hidden = member.get(
        f"workspaces/acme/members/{target['uuid']}", params={"fields": "+user.has_2fa_enabled"}
    )
    assert "has_2fa_enabled" not in hidden.json()["user"]
    other = emu.expected_members("globex")[0]["account_id"]
    assert admin.get(f"workspaces/acme/members/{other}").status_code == 404


def test_workspace_by_slug_or_uuid_and_not_found(emu: Emulator, admin: httpx.Client) -> None:
    by_slug = admin.get("workspaces/acme").json()
    assert by_slug["type"] == "workspace" and by_slug["slug"] == "acme"
    assert admin.get(f"workspaces/{by_slug['uuid']}").json() == by_slug
    members = admin.get(f"workspaces/{by_slug['uuid']}/members", params={"pagelen": 100}).json()
    assert members["size"] == 25
    missing = admin.get("workspaces/nope/members")
    assert missing.status_code == 404
    assert missing.json() == {
        "type": "error",
        "error": {"message": "No workspace with identifier 'nope'."},
    }


def test_authentication_failures(emu: Emulator) -> None:
    url = f"{emu.base_url}/workspaces/acme/members"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == (
            "Token is invalid, expired, or not supported for this endpoint."
        )
    scopeless = httpx.get(url, headers={"Authorization": f"Bearer {emu.scopeless_token}"})
    assert scopeless.status_code == 403
    assert scopeless.json()["error"]["detail"] == {
        "granted": ["read:user:bitbucket"],
        "required": ["read:workspace:bitbucket"],
    }
    me = httpx.get(
        f"{emu.base_url}/user", headers={"Authorization": f"Bearer {emu.scopeless_token}"}
    )
    assert me.status_code == 200 and me.json()["type"] == "user"


def test_basic_auth_with_api_token_is_admin(emu: Emulator) -> None:
    response = httpx.get(
        f"{emu.base_url}/workspaces/acme/members",
        params={"fields": ADD_2FA},
        auth=(emu.email, emu.api_token),
    )
    assert response.status_code == 200
    assert all("has_2fa_enabled" in v["user"] for v in response.json()["values"])
    assert "X-RateLimit-Resource" not in response.headers  # only for access-token callers
    assert httpx.get(f"{emu.base_url}/user", auth=(emu.email, "wrong")).status_code == 401


def test_oauth_client_credentials(emu: Emulator) -> None:
    granted = httpx.post(
        emu.token_url,
        auth=(emu.oauth_client_id, emu.oauth_client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert granted.status_code == 200
    token = granted.json()
    assert set(token) == {
        "access_token",
        "scopes",
        "expires_in",
        "token_type",
        "refresh_token",
        "state",
    }
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    listed = httpx.get(
        f"{emu.base_url}/workspaces/acme/members", params={"fields": ADD_2FA}, headers=headers
    )
    assert listed.status_code == 200 and "has_2fa_enabled" in listed.json()["values"][0]["user"]
    assert listed.headers["X-RateLimit-Resource"]
    wrong = httpx.post(
        emu.token_url, auth=(emu.oauth_client_id, "nope"), data={"grant_type": "client_credentials"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    bad_grant = httpx.post(
        emu.token_url,
        auth=(emu.oauth_client_id, emu.oauth_client_secret),
        data={"grant_type": "password"},
    )
    assert bad_grant.status_code == 400 and bad_grant.json()["error"] == "unsupported_grant_type"
    refreshed = httpx.post(
        emu.token_url,
        auth=(emu.oauth_client_id, emu.oauth_client_secret),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != token["access_token"]


def test_every_response_is_marked_and_counted(emu: Emulator, admin: httpx.Client) -> None:
    before = emu.request_count
    responses = [
        admin.get("workspaces/acme"),
        admin.get("workspaces/acme/members"),
        admin.get("workspaces/nope"),
        admin.get("no/such/path"),
        httpx.get(f"{emu.base_url}/user"),
        httpx.post(emu.token_url),
    ]
    assert [r.headers.get("X-Bb2sv-Emulator") for r in responses] == ["1"] * 6
    assert responses[3].status_code == 404 and responses[3].json()["type"] == "error"
    assert emu.request_count - before == 6


def test_set_day_changes_the_world(emu: Emulator, admin: httpx.Client) -> None:
    from datetime import date

    today = emu.expected_members("acme")
    emu.set_day(date(2031, 1, 1))
    later = emu.expected_members("acme")
    assert emu.day == date(2031, 1, 1)
    assert today != later
    served = admin.get("workspaces/acme/members", params={"pagelen": 100, "fields": ADD_2FA}).json()
    assert [v["user"]["account_id"] for v in served["values"]] == [m["account_id"] for m in later]


def test_same_seed_and_day_serve_the_same_bytes() -> None:
    """Two emulators, same seed and day: identical bodies apart from their own address."""
    from datetime import date

    from emulator import WorkspaceSpec, run_emulator

    bodies = []
    for _ in range(2):
        with run_emulator([WorkspaceSpec("acme", members=40, seed=9)], day=date(2027, 3, 1)) as emu:
            response = httpx.get(
                f"{emu.base_url}/workspaces/acme/members",
                params={"pagelen": 15, "page": 2, "fields": ADD_2FA},
                headers={"Authorization": f"Bearer {emu.admin_token}"},
            )
            origin = emu.base_url.removesuffix("/2.0").encode()
            bodies.append(response.content.replace(origin, b"ORIGIN"))
    assert bodies[0] == bodies[1]
    assert b"ORIGIN/2.0/workspaces/acme/members?" in bodies[0]
