"""Each Scenario fault fires as documented, on the targeted listing, at the right time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime

import httpx
import orjson
import pytest

from emulator import Emulator, Scenario

from .conftest import ADD_2FA, walk

MEMBERS = "workspaces/acme/members"
PERMISSIONS = "workspaces/acme/permissions"


def _statuses(client: httpx.Client, path: str, n: int) -> list[int]:
    return [client.get(path).status_code for _ in range(n)]


def test_rate_limit_storm_with_retry_after_seconds(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(rate_limit_storm=2, retry_after_s=7))
    first = admin.get(MEMBERS)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"]["message"] == "Rate limit for this resource has been exceeded"
    assert _statuses(admin, MEMBERS, 2) == [429, 200]
    assert admin.get("workspaces/acme").status_code == 200  # only listings are hit


def test_rate_limit_storm_with_http_date_or_no_retry_after(emu: Emulator, admin) -> None:
    emu.set_scenario(Scenario(rate_limit_storm=1, retry_after="http-date", retry_after_s=30))
    dated = admin.get(MEMBERS)
    assert dated.status_code == 429
    delay = parsedate_to_datetime(dated.headers["Retry-After"]).timestamp() - time.time()
    assert 25 < delay <= 31
    emu.set_scenario(Scenario(rate_limit_storm=1, retry_after="none"))
    bare = admin.get(MEMBERS)
    assert bare.status_code == 429 and "Retry-After" not in bare.headers


def test_html_errors_then_recovery(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(html_errors=2, html_error_status=503))
    broken = admin.get(MEMBERS)
    assert broken.status_code == 503
    assert broken.headers["content-type"].startswith("text/html")
    assert broken.text.startswith("<html>")
    assert _statuses(admin, MEMBERS, 2) == [503, 200]


def test_counted_faults_run_in_order(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(rate_limit_storm=1, html_errors=1))
    assert _statuses(admin, MEMBERS, 3) == [429, 502, 200]


def test_slow_responses_exceed_a_client_timeout(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(slow_responses=1, slow_s=1.0))
    with pytest.raises(httpx.ReadTimeout):
        admin.get(MEMBERS, timeout=0.3)
    started = time.perf_counter()
    assert admin.get(MEMBERS, timeout=5).status_code == 200
    assert time.perf_counter() - started < 0.5  # only one slow response


def test_truncated_json(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(truncated_json=1))
    cut = admin.get(MEMBERS)
    assert cut.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(cut.content)
    whole = admin.get(MEMBERS)
    assert len(cut.content) == len(whole.content) // 2
    assert whole.content.startswith(cut.content)


def test_fault_after_and_fault_listing_target_the_fault(emu: Emulator, admin) -> None:
    emu.set_scenario(Scenario(html_errors=1, fault_listing="permissions", fault_after=2))
    assert _statuses(admin, MEMBERS, 3) == [200, 200, 200]
    assert _statuses(admin, PERMISSIONS, 4) == [200, 200, 502, 200]


def test_fault_workspace_limits_faults_to_one_workspace(emu: Emulator, admin) -> None:
    emu.set_scenario(Scenario(rate_limit_storm=5, size_offset=2, fault_workspace="globex"))
    assert _statuses(admin, MEMBERS, 2) == [200, 200]
    assert admin.get(MEMBERS).json()["size"] == 25
    assert _statuses(admin, "workspaces/globex/members", 5) == [429] * 5
    assert admin.get("workspaces/globex/members").json()["size"] == 5


def test_next_loop_points_back(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(next_loop=True, fault_listing="members"))
    pages = walk(admin, MEMBERS, {"pagelen": 10}, limit=7)
    assert len(pages) == 7  # never ends on its own
    assert [p["page"] for p in pages] == [1, 2, 3, 1, 2, 3, 1]
    assert "next" not in walk(admin, PERMISSIONS, {"pagelen": 10})[-1]


def test_members_join_during_pagination_duplicates_a_member(emu: Emulator, admin) -> None:
    emu.set_scenario(Scenario(members_join=3))
    pages = walk(admin, MEMBERS, {"pagelen": 10, "fields": ADD_2FA})
    ids = [v["user"]["account_id"] for p in pages for v in p["values"]]
    assert len(ids) == 28 and len(set(ids)) == 25  # 3 seen twice, 3 joiners never seen
    assert pages[0]["size"] == 25 and pages[-1]["size"] == 28
    truth = emu.expected_members("acme")
    assert len(truth) == 28 and not set(ids) >= {m["account_id"] for m in truth}


def test_members_leave_during_pagination_skips_members(emu: Emulator, admin) -> None:
    emu.set_scenario(Scenario(members_leave=4))
    pages = walk(admin, MEMBERS, {"pagelen": 10})
    ids = [v["user"]["account_id"] for p in pages for v in p["values"]]
    assert pages[0]["size"] == 25 and len(ids) < 25 and len(set(ids)) == len(ids)
    assert len(emu.expected_members("acme")) == 21
    emu.set_scenario(Scenario())  # the world is whole again
    assert len(emu.expected_members("acme")) == 25


def test_size_omitted_or_wrong(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(omit_size=True))
    assert "size" not in admin.get(MEMBERS).json()
    emu.set_scenario(Scenario(size_offset=5, fault_listing="permissions"))
    assert admin.get(PERMISSIONS).json()["size"] == 30
    assert admin.get(MEMBERS).json()["size"] == 25


def test_opaque_cursor_next_links(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(opaque_cursor=True))
    pages = walk(admin, MEMBERS, {"pagelen": 10, "fields": ADD_2FA})
    ids = [v["user"]["account_id"] for p in pages for v in p["values"]]
    assert ids == [m["account_id"] for m in emu.expected_members("acme")]
    assert all("page" not in p for p in pages)
    cursor = httpx.URL(pages[0]["next"]).params["page"]
    assert not cursor.isdigit() and len(cursor) >= 12
    built = admin.get(MEMBERS, params={"pagelen": 10, "page": 2})  # a client building URLs
    assert built.status_code == 400


def test_hourly_budget_gives_429_and_headers(emu: Emulator, admin: httpx.Client) -> None:
    emu.set_scenario(Scenario(hourly_budget=5))
    responses = [admin.get(MEMBERS) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-NearLimit"] for r in responses[:5]] == ["false"] * 3 + [
        "true"
    ] * 2
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in responses)
    limited = responses[-1]
    assert limited.json()["error"]["message"] == "Rate limit for this resource has been exceeded"
    assert 3500 <= int(limited.headers["Retry-After"]) <= 3600
    other = httpx.get(
        f"{emu.base_url}/{MEMBERS}", headers={"Authorization": f"Bearer {emu.member_token}"}
    )
    assert other.status_code == 200  # each token has its own budget


def test_latency_does_not_serialise_requests(emu: Emulator) -> None:
    emu.set_scenario(Scenario(latency_s=0.4))
    headers = {"Authorization": f"Bearer {emu.admin_token}"}
    url = f"{emu.base_url}/{MEMBERS}"
    # One client, made before the clock starts: a client per request loads the CA bundle
    # each time (~26 ms, one at a time), which a busy machine stretched towards the bound.
    with httpx.Client(headers=headers) as client, ThreadPoolExecutor(8) as pool:
        started = time.perf_counter()
        statuses = list(pool.map(lambda _: client.get(url).status_code, range(8)))
        elapsed = time.perf_counter() - started
    assert statuses == [200] * 8
    assert 0.4 <= elapsed < 1.5  # eight sequential requests would take 3.2 s


def test_oauth_tokens_expire(emu: Emulator) -> None:
    emu.set_scenario(Scenario(oauth_expires_in=1))
    token = httpx.post(
        emu.token_url,
        auth=(emu.oauth_client_id, emu.oauth_client_secret),
        data={"grant_type": "client_credentials"},
    ).json()
    assert token["expires_in"] == 1
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{emu.base_url}/user", headers=headers).status_code == 200
    time.sleep(1.1)
    assert httpx.get(f"{emu.base_url}/user", headers=headers).status_code == 401


def test_invalid_scenarios_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="fault_listing"):
        Scenario(fault_listing="repos")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate_limit_storm"):
        Scenario(rate_limit_storm=-1)
    with pytest.raises(ValueError, match="retry_after"):
        Scenario(retry_after="tomorrow")  # type: ignore[arg-type]
