"""Whole listings against the emulator: every member read, in the minimum number of requests."""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator import Scenario
from tasks.bitbucket.auth import BearerToken
from tasks.normalise import observations_from_pages, two_step_state


def minimum_requests(members: int) -> int:
    return 2 * max(1, math.ceil(members / 100))


@pytest.mark.parametrize(
    ("workspace", "members"), [("solo", 1), ("hundred", 100), ("hundred-one", 101)]
)
def test_complete_listing(
    emu, make_settings, collect, member_keys, expected_keys, workspace, members
):
    extract = collect(make_settings(), workspace)
    assert extract.status == "complete", extract.error
    assert extract.error is None and extract.error_kind is None
    assert extract.emulated is True
    assert extract.request_count == minimum_requests(members)
    assert member_keys(extract) == expected_keys(workspace)
    assert [(r.listing, r.complete, r.reported_size, r.values_read) for r in extract.listings] == [
        ("members", True, members, members),
        ("permissions", True, members, members),
    ]
    assert all(page.status_code == 200 for page in extract.pages)
    assert extract.pages[0].url.startswith(emu.base_url + f"/workspaces/{workspace}/members?")
    assert extract.started_at <= extract.pages[0].fetched_at <= extract.finished_at
    frame = observations_from_pages(workspace, extract.pages)
    truth = {m["account_id"]: m for m in emu.expected_members(workspace)}
    for row in frame.itertuples():
        assert row.two_step_state == two_step_state(truth[row.account_id]["has_2fa_enabled"])
        assert row.permission == truth[row.account_id]["permission"]


def test_permissions_without_account_ids_are_joined_by_uuid(emu, make_settings, collect):
    """Atlassian's own example of the /permissions listing has users with a uuid and no
    account_id: each entry still finds its member, and the population is whole."""
    emu.set_scenario(Scenario(without_account_id=True, fault_listing="permissions"))
    extract = collect(make_settings(), "hundred-one")
    assert extract.status == "complete", extract.error
    permissions = [page for page in extract.pages if page.listing == "permissions"]
    assert permissions and all(b"account_id" not in page.body for page in permissions)
    frame = observations_from_pages("hundred-one", extract.pages)
    truth = {m["account_id"]: m["permission"] for m in emu.expected_members("hundred-one")}
    assert len(frame) == 101 and frame["permission"].notna().all()
    assert dict(zip(frame["account_id"], frame["permission"], strict=True)) == truth


def test_an_empty_workspace_is_not_a_whole_population(emu, make_settings, collect):
    """Every workspace has an owner: an empty members listing proves nothing, so it never
    becomes a report of 100 % of nobody."""
    extract = collect(make_settings(), "empty")
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    assert "the members listing is empty" in extract.error
    assert extract.request_count == minimum_requests(0)  # both listings read to their end


@pytest.mark.parametrize(
    ("only_in", "permissions_name", "first"),
    [
        *[(only_in, "account_id", "557058:only-here") for only_in in ("members", "permissions")],
        # /permissions users known by uuid alone (Atlassian's example of that listing)
        ("members", "uuid", "557058:only-here"),
        ("permissions", "uuid", "{only-here}"),
    ],
)
def test_listings_that_disagree_are_not_a_whole_population(
    settings_at, collect, one_member_page, only_in, permissions_name, first
):
    """The 2SV states come from one listing and the permissions from the other: an owner
    listed only under permissions would not be judged at all, one only under members would
    be judged without a permission. Each listing on its own is whole here."""
    import httpx

    only_here = {"account_id": "557058:only-here", "uuid": "{only-here}", "has_2fa_enabled": False}

    def answer(request: httpx.Request) -> httpx.Response:
        page = one_member_page
        if request.url.path.endswith(f"/{only_in}"):
            values = [*page["values"], {"user": only_here, "permission": "owner"}]
            page = {**page, "size": 2, "values": values}
        if request.url.path.endswith("/permissions") and permissions_name == "uuid":
            values = [
                {**value, "user": {k: v for k, v in value["user"].items() if k != "account_id"}}
                for value in page["values"]
            ]
            page = {**page, "values": values}
        return httpx.Response(200, json=page)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        extract = collect(settings_at("http://127.0.0.1:9/2.0", "t-apart"), "acme", client=http)
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    assert f"1 member only in the {only_in} listing (first: {first})" in extract.error
    assert [listing.complete for listing in extract.listings] == [True, True]


NEITHER = "with neither account_id nor uuid"


@pytest.mark.parametrize(
    ("ids", "reason"),
    [
        ({}, NEITHER),
        ({"uuid": ""}, NEITHER),
        ({"account_id": "", "uuid": ""}, NEITHER),
        ({"account_id": None, "uuid": None}, NEITHER),
        ({"account_id": "", "uuid": "{u-1}"}, "whose account_id is empty"),
        ({"account_id": "557058:x", "uuid": ""}, "whose uuid is empty"),
    ],
)
def test_a_member_without_an_id_is_not_a_whole_population(
    settings_at, collect, one_member_page, ids, reason
):
    """Without an account_id or a uuid (an empty string is none) a member cannot be told
    from another, nor matched across the listings; with an empty one it is keyed by the
    other here but by '' in the views' SQL, where two such members would be one."""
    import httpx

    odd = {"user": {**ids, "nickname": "ghost", "has_2fa_enabled": True}, "permission": "owner"}
    page = {**one_member_page, "size": 2, "values": [*one_member_page["values"], odd]}
    with httpx.Client(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=page))
    ) as http:
        extract = collect(settings_at("http://127.0.0.1:9/2.0", "t-ids"), "acme", client=http)
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    assert f"page 1 has a member {reason}" in extract.error


@pytest.mark.slow
def test_ten_thousand_members_minimum_requests_and_wall_time(
    make_settings, collect, member_keys, expected_keys
):
    settings = make_settings()
    started = time.perf_counter()
    extract = collect(settings, "big")
    seconds = time.perf_counter() - started
    print(
        f"\n10,000 members: {extract.request_count} requests, {seconds:.2f} s wall time "
        f"({extract.request_count / seconds:.0f} requests/s against the emulator)"
    )
    assert extract.status == "complete", extract.error
    assert extract.request_count == 200
    assert member_keys(extract) == expected_keys("big")


def test_opaque_cursor_is_followed_as_given(
    emu, make_settings, collect, member_keys, expected_keys
):
    emu.set_scenario(Scenario(opaque_cursor=True))
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    assert extract.request_count == 6
    assert member_keys(extract) == expected_keys("acme")


def test_non_admin_token_is_whole_but_every_state_unknown(emu, make_settings, collect, caplog):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    extract = collect(make_settings(BearerToken(emu.member_token)), "acme")
    assert extract.status == "complete"
    frame = observations_from_pages("acme", extract.pages)
    assert len(frame) == 250
    assert set(frame["two_step_state"]) == {"unknown"}
    assert "no has_2fa_enabled for any of the 250 members" in caplog.text
    assert "workspace admin" in caplog.text


def test_concurrent_workspaces_share_one_settings(
    make_settings, collect, member_keys, expected_keys
):
    settings = make_settings()
    workspaces = ["acme", "hundred", "hundred-one", "solo"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        extracts = list(pool.map(lambda ws: collect(settings, ws), workspaces))
    for workspace, extract in zip(workspaces, extracts, strict=True):
        assert extract.status == "complete", extract.error
        assert member_keys(extract) == expected_keys(workspace)


def test_plus_goes_on_the_wire_as_2b_over_kept_alive_connections(
    settings_at, collect, canned_server, one_member_page
):
    server = canned_server(200, json.dumps(one_member_page).encode())
    extract = collect(settings_at(server.base_url, "t-wire-1"), "acme")
    assert extract.status == "complete", extract.error
    assert extract.emulated is True  # a loopback URL, though this server sends no header
    request_lines = sorted(head.split(b"\r\n", 1)[0] for head in server.heads)
    assert request_lines == [
        b"GET /2.0/workspaces/acme/members?pagelen=100&fields=%2Bvalues.user.has_2fa_enabled"
        b" HTTP/1.1",
        b"GET /2.0/workspaces/acme/permissions?pagelen=100 HTTP/1.1",
    ]
    assert server.connections == 2  # one per listing, read at once
    for head in server.heads:
        assert b"\r\nAuthorization: Bearer t-wire-1" in head
        assert b"Connection: keep-alive" in head  # HTTP/1.1 keep-alive for a listing's pages


def test_a_server_calling_itself_the_emulator_is_not_believed(one_member_page):
    """`emulated` comes from the configured URL. A server that is not on loopback (here an
    in-process transport standing in for one: no real non-loopback HTTPS server can run in a
    test) and answers with the emulator's header still gives real, not emulator, data."""
    import httpx

    from tasks.bitbucket.config import BitbucketSettings, is_emulator_url
    from tasks.bitbucket.extract import extract_workspace

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=one_member_page, headers={"X-Bb2sv-Emulator": "1"})

    settings = BitbucketSettings(
        auth=BearerToken("t-hostile-1"), api_url="https://bitbucket.example.test/2.0"
    )
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        extract = extract_workspace(settings, "acme", client=http)
    assert extract.status == "complete", extract.error
    assert extract.emulated is False
    assert [is_emulator_url(url) for url in (
        "https://api.bitbucket.org/2.0", "http://127.0.0.1:8765/2.0", "http://localhost:1/2.0",
        "https://127.0.0.2/2.0", "http://[::1]:8765/2.0", "https://127.0.0.1.example.com/2.0",
    )] == [False, True, True, True, True, False]  # fmt: skip
