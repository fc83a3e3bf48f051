"""Members and permissions are read at once: the order the emulator saw, the order stored,
and what one listing's failure does to the other.

Overlap is judged by the order in which the emulator received the requests (its request
log), never by timing threads.
"""

from __future__ import annotations

import time

import pytest

from emulator import Scenario
from tasks.vocabulary import ErrorKind, RunStatus

BIG_PAGES = 100  # "big": 10,000 members, 100 pages per listing
# A round trip long enough that a busy machine's thread skew (tens of ms) cannot add a page
# to a listing that should have been stopped.
LATENCY = 0.1


@pytest.fixture
def settle():
    """After the test, let the requests a stopped listing abandoned (the server still pauses
    them for the latency) reach the handler before the next test's scenario is installed."""
    yield
    time.sleep(5 * LATENCY)


def listing_requests(emu, since: int, workspace: str) -> list[str]:
    """'members' / 'permissions' for each request of `workspace` after the first `since`."""
    prefix = f"/2.0/workspaces/{workspace}/"
    return [
        path.removeprefix(prefix) for path in emu.request_paths()[since:] if path.startswith(prefix)
    ]


def test_both_listings_are_read_at_once(emu, make_settings, collect):
    emu.set_scenario(Scenario(latency_s=0.05))  # 3 pages per listing: 150 ms each at least
    since = len(emu.request_paths())
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    order = listing_requests(emu, since, "acme")
    assert sorted(order) == ["members"] * 3 + ["permissions"] * 3
    # Read one after the other, every request of one listing would come before the other's.
    last = {listing: len(order) - 1 - order[::-1].index(listing) for listing in set(order)}
    assert order.index("permissions") < last["members"]
    assert order.index("members") < last["permissions"]
    assert extract.request_count == len(extract.pages) == 6  # the minimum: nothing failed


def test_pages_are_stored_listing_by_listing_whatever_arrives_first(emu, make_settings, collect):
    # Members page 1 takes 0.5 s: the whole permissions listing arrives before it.
    emu.set_scenario(Scenario(slow_responses=1, slow_s=0.5, fault_listing="members"))
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    pages = extract.pages
    assert [page.listing for page in pages] == ["members"] * 3 + ["permissions"] * 3
    assert pages[5].fetched_at < pages[0].fetched_at  # received last, stored first
    # Each listing page by page, in the order its next links led.
    assert "page=" not in pages[0].url and "page=" not in pages[3].url
    assert [page.url.rsplit("page=", 1)[-1] for page in pages[1:3] + pages[4:6]] == [
        "2",
        "3",
        "2",
        "3",
    ]
    # Read again without the delay, the stored pages are the same, in the same order.
    emu.set_scenario(Scenario())
    again = collect(make_settings(), "acme")
    assert [(p.listing, p.url, p.sha256) for p in again.pages] == [
        (p.listing, p.url, p.sha256) for p in pages
    ]


def test_a_failing_permissions_listing_stops_the_members_listing(
    emu, make_settings, collect, settle
):
    # Permissions page 2 is refused (a revoked credential); members would take 100 pages.
    emu.set_scenario(
        Scenario(latency_s=LATENCY, auth_failures=1, fault_listing="permissions", fault_after=1)
    )
    since = len(emu.request_paths())
    extract = collect(make_settings(), "big")
    assert (extract.status, extract.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.AUTH)
    assert "permissions of workspace 'big'" in extract.error  # the failure, not the stop
    assert "HTTP 401" in extract.error
    members, permissions = extract.listings
    assert not members.complete and "the other listing's failure" in members.reason
    assert not permissions.complete and "HTTP 401" in permissions.reason
    order = listing_requests(emu, since, "big")
    assert order.count("permissions") == 2
    assert order.count("members") <= 4  # stopped at once, not read on for 100 pages
    # The members request in flight when permissions failed was answered and kept.
    assert extract.request_count == len(order) == len(extract.pages)
    assert extract.stalled_since is not None  # the permissions page that failed


def test_a_failing_members_listing_stops_the_permissions_listing(
    emu, make_settings, collect, settle
):
    emu.set_scenario(Scenario(latency_s=LATENCY, html_errors=1000, fault_listing="members"))
    since = len(emu.request_paths())
    extract = collect(make_settings(max_attempts=2, backoff_cap=0.05), "big")
    # Failed, not incomplete: no members page arrived, whatever permissions read meanwhile.
    assert (extract.status, extract.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    assert "gave up reading members of workspace 'big' at page 1 after 2 attempt(s)" in (
        extract.error
    )
    order = listing_requests(emu, since, "big")
    assert order.count("members") == 2
    assert order.count("permissions") < BIG_PAGES // 4
    assert [page.listing for page in extract.pages] == sorted(p.listing for p in extract.pages)


def test_an_anomaly_in_one_listing_stops_nothing(emu, make_settings, collect):
    emu.set_scenario(Scenario(next_loop=True, fault_listing="permissions"))
    extract = collect(make_settings(), "acme")
    assert (extract.status, extract.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.ANOMALY)
    members, permissions = extract.listings
    assert members.complete and members.values_read == 250
    assert "next-link loop" in permissions.reason
    assert "permissions listing: next-link loop" in extract.error


def test_each_page_that_arrives_whole_is_normalised_on_the_way(emu, make_settings, collect):
    # The first members page is answered 429 once: a response kept, but no members.
    emu.set_scenario(Scenario(rate_limit_storm=1, retry_after_s=0, fault_listing="members"))
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    whole = [page for page in extract.pages if page.status_code == 200]
    assert len(whole) == 6 and len(extract.pages) == 7
    assert extract.derived is not None and len(extract.derived) == 6
    # What the store will ask of the memo: a members page's members, a permissions page's roles.
    for page in whole:
        what = "members" if page.listing == "members" else "roles"
        found = extract.derived.get(page, what, lambda _page: pytest.fail("parsed again"))
        assert found is not None
