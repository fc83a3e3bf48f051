"""The emulated organization directory (Admin API v2 users) over real loopback HTTP: its
shape, its population, and its faults."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import httpx
import pytest

from emulator import Emulator, OrgSpec, Scenario, WorkspaceSpec, run_emulator
from tasks.bitbucket.tls import tls_context

DAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def org_emu():
    """One emulator for the module (the folder's `emu` starts one per test)."""
    specs = [WorkspaceSpec("acme", members=25, seed=1), WorkspaceSpec("globex", members=3, seed=7)]
    with run_emulator(specs, day=DAY) as running:
        yield running


@pytest.fixture
def emu(org_emu: Emulator):
    org_emu.set_scenario(Scenario())
    yield org_emu
    org_emu.set_scenario(Scenario())


@pytest.fixture
def org(emu: Emulator):
    """httpx client with the organization API key, rooted at the directory's users URL."""
    url = f"{emu.admin_api_url}/admin/v2/orgs/{emu.org_id}/directories/-/users"
    headers = {"Authorization": f"Bearer {emu.admin_api_key}"}
    with httpx.Client(headers=headers, timeout=10, verify=tls_context()) as client:
        yield client, url


def read_all(client: httpx.Client, url: str, limit: int = 10, pages: int = 20) -> list[dict]:
    bodies = [client.get(url, params={"limit": limit}).json()]
    while (cursor := bodies[-1]["links"]["next"]) is not None and len(bodies) < pages:
        bodies.append(client.get(url, params={"limit": limit, "cursor": cursor}).json())
    return bodies


def test_pages_follow_opaque_cursors_to_every_user(emu, org):
    client, url = org
    bodies = read_all(client, url)
    users = [user for body in bodies for user in body["data"]]
    assert users == emu.expected_directory()
    assert all(len(body["data"]) == 10 for body in bodies[:-1])
    cursors = [body["links"]["next"] for body in bodies[:-1]]
    assert all(not cursor.isdigit() for cursor in cursors) and len(set(cursors)) == len(cursors)
    assert bodies[-1]["links"]["next"] is None and bodies[0]["links"]["prev"] is None
    for user in users:
        assert {"accountId", "accountStatus", "claimStatus", "email"} <= user.keys()
        # mfaEnabled is sent for managed accounts only
        assert ("mfaEnabled" in user) is (user["claimStatus"] == "managed")


def test_the_organization_mixes_every_case_a_rule_must_tell_apart():
    """Managed and unmanaged accounts, Atlassian 2SV, an inactive account, members outside
    the organization, org users outside the workspaces, and app users (never listed)."""
    spec = WorkspaceSpec("big", members=400, seed=4, app_user_share=0.05)
    with run_emulator([spec], day=DAY, org=OrgSpec(domain="corp.example")) as emu:
        users = emu.expected_directory()
        members = emu.expected_members("big")
    listed = {user["accountId"]: user for user in users}
    apps = [m for m in members if m["account_type"] == "app_user"]
    assert apps and all(m["has_2fa_enabled"] is False for m in apps)
    assert not any(m["account_id"] in listed for m in apps)
    people = [m for m in members if m["account_type"] == "user"]
    outside = [m for m in people if m["account_id"] not in listed]
    assert 0 < len(outside) < len(people) * 0.2
    org_only = set(listed) - {m["account_id"] for m in members}
    assert len(org_only) == OrgSpec().extra_users
    kinds = Counter(
        (u["claimStatus"], u["accountStatus"], u.get("mfaEnabled"), u["email"].split("@")[1])
        for u in users
    )
    assert kinds[("managed", "active", True, "corp.example")] > 0
    assert kinds[("managed", "active", False, "corp.example")] > 0
    assert kinds[("unmanaged", "active", None, "corp.example")] > 0  # in the domain, unclaimed
    assert any(status == "inactive" for (_claim, status, *_rest) in kinds)


def test_app_users_are_listed_as_such_among_members():
    spec = WorkspaceSpec("acme", members=60, seed=2, app_user_share=0.2)
    with run_emulator([spec], day=DAY) as emu:
        headers = {"Authorization": f"Bearer {emu.admin_token}"}
        body = httpx.get(
            f"{emu.base_url}/workspaces/acme/members",
            params={"pagelen": 100, "fields": "+values.user.has_2fa_enabled"},
            headers=headers,
        ).json()
    users = [value["user"] for value in body["values"]]
    apps = [user for user in users if user["type"] == "app_user"]
    assert apps and all(user["kind"] in ("forge", "connect") for user in apps)
    assert all("nickname" not in user and user["has_2fa_enabled"] is False for user in apps)
    assert users[0]["type"] == "user"  # the owner in the first slot is a person


@pytest.mark.parametrize(
    ("authorization", "org_id", "status"),
    [
        (None, None, 401),
        ("Bearer wrong-key", None, 401),
        ("bitbucket-admin-token", None, 401),  # a Bitbucket token is not an org API key
        ("key", "another-org", 404),
    ],
)
def test_wrong_key_or_organization_is_refused(emu, authorization, org_id, status):
    if authorization == "key":
        authorization = f"Bearer {emu.admin_api_key}"
    elif authorization == "bitbucket-admin-token":
        authorization = f"Bearer {emu.admin_token}"
    url = f"{emu.admin_api_url}/admin/v2/orgs/{org_id or emu.org_id}/directories/-/users"
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(url, headers=headers)
    assert response.status_code == status
    assert response.json()["code"] == status and response.json()["message"]


def test_rate_limited_with_reset_time_not_retry_after(emu, org):
    client, url = org
    emu.set_scenario(Scenario(fault_listing="directory", rate_limit_storm=1, retry_after_s=30))
    response = client.get(url)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    reset = datetime.fromisoformat(response.headers["X-RateLimit-Reset"])
    assert 25 < (reset - datetime.now(UTC)).total_seconds() <= 31
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert client.get(url).status_code == 200  # only the counted requests are refused


def test_truncated_json_and_revoked_key_midway(emu, org):
    client, url = org
    emu.set_scenario(Scenario(fault_listing="directory", truncated_json=1))
    response = client.get(url, params={"limit": 10})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    emu.set_scenario(Scenario(fault_listing="directory", fault_after=1, auth_failures=1))
    first = client.get(url, params={"limit": 10}).json()
    second = client.get(url, params={"limit": 10, "cursor": first["links"]["next"]})
    assert second.status_code == 401


def test_cursor_loop_leads_back_to_the_first_page(emu, org):
    client, url = org
    emu.set_scenario(Scenario(fault_listing="directory", next_loop=True))
    bodies = read_all(client, url, pages=12)
    size = len(emu.expected_directory())
    pages = -(-size // 10)
    assert len(bodies) > pages  # never ends
    assert bodies[pages]["data"] == bodies[0]["data"]


def test_faults_aimed_at_a_workspace_leave_the_directory_alone(emu, org):
    client, url = org
    emu.set_scenario(Scenario(fault_workspace="acme", html_errors=3))
    assert client.get(url).status_code == 200
