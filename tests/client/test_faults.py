"""Each fault the emulator can inject: retried to a complete run, or reported with a reason.

Waits go through FakeClock (see conftest): `clock.sleeps` is what the client chose to wait.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from emulator import Scenario

STATUSES_OK = [200] * 6  # acme: 250 members → 3 pages per listing


def statuses(extract):
    return [page.status_code for page in extract.pages]


@pytest.mark.parametrize("wait", [1, 7])
def test_429_storm_with_retry_after_seconds(
    emu, make_settings, collect, member_keys, expected_keys, clock, wait
):
    # Targeted: an untargeted storm hits whichever listing asks first.
    emu.set_scenario(
        Scenario(
            rate_limit_storm=3, retry_after="seconds", retry_after_s=wait, fault_listing="members"
        )
    )
    extract = collect(make_settings(), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert clock.sleeps == [float(wait)] * 3
    assert statuses(extract) == [429, 429, 429, *STATUSES_OK]
    assert extract.request_count == 9
    assert member_keys(extract) == expected_keys("acme")


def test_429_storm_with_retry_after_http_date(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(rate_limit_storm=2, retry_after="http-date", retry_after_s=30))
    extract = collect(make_settings(), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert len(clock.sleeps) == 2
    assert all(28.0 <= wait <= 31.0 for wait in clock.sleeps), clock.sleeps  # 1 s date resolution
    assert extract.request_count == 8


def test_429_storm_without_retry_after_backs_off_with_jitter(
    emu, make_settings, collect, clock, caplog
):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    emu.set_scenario(Scenario(rate_limit_storm=4, retry_after="none", fault_listing="members"))
    extract = collect(make_settings(backoff_base=0.5, backoff_cap=1.5), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert len(clock.sleeps) == 4
    ceilings = [0.5, 1.0, 1.5, 1.5]  # base * 2**(attempt-1), capped
    assert all(0 <= wait <= top for wait, top in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 4  # jittered, not a fixed schedule
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retry" in r.message]
    assert len(retries) == 4 and "HTTP 429" in retries[0].message


@pytest.mark.parametrize("status", [502, 503, 504])
def test_html_5xx_pages_are_retried_without_traceback(
    emu, make_settings, collect, clock, caplog, status
):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    emu.set_scenario(
        Scenario(
            html_errors=2, html_error_status=status, fault_listing="permissions", fault_after=1
        )
    )
    extract = collect(make_settings(), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert statuses(extract) == [200, 200, 200, 200, status, status, 200, 200]
    assert extract.pages[4].body.startswith(b"<html>") and extract.pages[4].listing == "permissions"
    assert f"HTTP {status} (an HTML page)" in caplog.text
    assert "Traceback" not in caplog.text


def test_slow_response_beyond_read_timeout_is_retried(emu, make_settings, collect, clock, caplog):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    emu.set_scenario(Scenario(slow_responses=1, slow_s=3.0, fault_listing="members", fault_after=1))
    extract = collect(make_settings(read_timeout=0.3), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert extract.request_count == 7  # the timed-out attempt counts…
    assert statuses(extract) == STATUSES_OK  # …but produced no response to keep
    assert "no response within 0.3 s (ReadTimeout)" in caplog.text


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (httpx.ConnectTimeout, "no response within 2 s (ConnectTimeout)"),
        (httpx.ReadTimeout, "no response within 2 s (ReadTimeout)"),
        (httpx.ConnectError, "request failed (ConnectError)"),  # refused
        (httpx.ReadError, "request failed (ReadError)"),  # reset
        (httpx.RemoteProtocolError, "request failed (RemoteProtocolError)"),
    ],
)
def test_network_faults_are_retried(
    settings_at, collect, clock, caplog, one_member_page, fault, said
):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        members = [r for r in sent if r.url.path.endswith("/members")]
        if request.url.path.endswith("/members") and len(members) == 1:
            raise fault("injected", request=request)
        return httpx.Response(200, json=one_member_page)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        settings = settings_at("http://127.0.0.1:9/2.0", "t-net")
        extract = collect(settings, "acme", clock=clock, client=http)
    assert extract.status == "complete", extract.error
    assert extract.request_count == 3 and len(sent) == 3  # the failed attempt counts…
    assert statuses(extract) == [200, 200]  # …but left no response to keep
    assert len(clock.sleeps) == 1
    assert f"members: {said}; retry 1 in" in caplog.text


def test_truncated_json_is_retried_and_kept_as_evidence(
    emu, make_settings, collect, member_keys, expected_keys, clock
):
    emu.set_scenario(Scenario(truncated_json=2, fault_listing="members"))
    extract = collect(make_settings(), "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert statuses(extract) == [200] * 8
    assert extract.request_count == 8 and len(clock.sleeps) == 2
    first = extract.pages[0].body
    assert first.startswith(b"{") and not first.rstrip().endswith(b"}")
    assert member_keys(extract) == expected_keys("acme")


def test_next_link_loop_is_incomplete(emu, make_settings, collect):
    emu.set_scenario(Scenario(next_loop=True, fault_listing="members"))
    extract = collect(make_settings(), "acme")
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    members, permissions = extract.listings
    assert not members.complete and "next-link loop" in members.reason
    assert "page 4" in members.reason and "repeats page 1 exactly" in members.reason
    assert "listed twice" not in members.reason  # the loop is named, not its symptoms
    assert permissions.complete
    assert "workspace 'acme'" in extract.error and "members listing" in extract.error
    assert extract.request_count == 7  # stopped as soon as page 1 came back


def test_member_joining_during_pagination_is_a_duplicate(emu, make_settings, collect):
    emu.set_scenario(Scenario(members_join=3, fault_listing="members"))
    extract = collect(make_settings(), "acme")
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    reason = extract.listings[0].reason
    assert reason.startswith("3 members were listed twice (first: 557058:")
    assert "on pages 1 and 2" in reason and "membership changed" in reason
    # The permissions listing, read at the same time, may see the change too (or may not).


def test_member_leaving_during_pagination_is_a_size_mismatch(emu, make_settings, collect):
    emu.set_scenario(Scenario(members_leave=3, fault_listing="members"))
    extract = collect(make_settings(), "acme")
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    assert extract.listings[0].reason == (
        "the first page reported size 250 but 247 distinct members were read"
    )


@pytest.mark.parametrize("offset", [3, -1])
def test_size_mismatch_is_incomplete(emu, make_settings, collect, offset):
    emu.set_scenario(Scenario(size_offset=offset))
    extract = collect(make_settings(), "acme")
    assert (extract.status, extract.error_kind) == ("incomplete", "anomaly")
    for listing in extract.listings:
        assert listing.reported_size == 250 + offset and listing.values_read == 250
        assert f"reported size {250 + offset} but 250 distinct" in listing.reason


def test_size_absent_is_still_complete(emu, make_settings, collect, member_keys, expected_keys):
    emu.set_scenario(Scenario(omit_size=True))
    extract = collect(make_settings(), "acme")
    assert extract.status == "complete", extract.error
    assert [listing.reported_size for listing in extract.listings] == [None, None]
    assert member_keys(extract) == expected_keys("acme")


def test_server_budget_exhausted_midway_is_incomplete_rate_limited(
    emu, make_settings, collect, clock
):
    emu.set_scenario(Scenario(hourly_budget=4))  # Retry-After ≈ 3600 s, past cap and deadline
    extract = collect(make_settings(retry_deadline=20), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == ("incomplete", "rate_limited")
    # Four pages between the two listings, then the 429 that spends the budget (the other
    # listing's request in flight may have met the limit too).
    assert sorted(statuses(extract)) in ([200] * 4 + [429], [200] * 4 + [429, 429])
    # Gave up at once instead of sleeping past the deadline (NearLimit pacing is ~4 ms here).
    assert sum(clock.sleeps) < 0.1
    # The cap's message, which says when the server answers again (the budget's hour).
    assert "workspace 'acme'" in extract.error and "BITBUCKET_RETRY_AFTER_CAP" in extract.error
    assert "Run again in 60 minute(s)" in extract.error
    assert not all(listing.complete for listing in extract.listings)


def test_rate_limited_before_any_page_is_failed(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(rate_limit_storm=50, retry_after_s=3, fault_listing="members"))
    extract = collect(make_settings(retry_deadline=10), "acme", clock=clock)
    # Failed: no members page arrived, whatever the permissions listing read meanwhile.
    assert (extract.status, extract.error_kind) == ("failed", "rate_limited")
    assert clock.sleeps == [3.0, 3.0, 3.0]  # the 4th wait would pass the 10 s deadline
    assert {page.status_code for page in extract.pages if page.listing == "members"} == {429}


@pytest.mark.parametrize(("fault_after", "status"), [(0, "failed"), (1, "incomplete")])
def test_transient_deadline(emu, make_settings, collect, clock, fault_after, status):
    emu.set_scenario(Scenario(html_errors=1000, fault_listing="members", fault_after=fault_after))
    extract = collect(
        make_settings(retry_deadline=3, backoff_base=1, backoff_cap=2), "acme", clock=clock
    )
    assert (extract.status, extract.error_kind) == (status, "transient")
    assert "gave up reading members of workspace 'acme'" in extract.error
    assert "HTTP 502 (an HTML page)" in extract.error
    assert sum(clock.sleeps) <= 3


def test_client_paces_before_the_server_says_429(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(hourly_budget=100))
    settings = make_settings(max_requests_per_hour=4, retry_deadline=10_000)
    extract = collect(settings, "acme", clock=clock)
    assert extract.status == "complete", extract.error
    assert statuses(extract) == STATUSES_OK  # never a 429
    # Requests 1-4 go at once; the 5th waits until the 1st leaves the rolling hour.
    assert 3590 <= clock.sleeps[0] <= 3600
    assert sum(clock.sleeps) <= 3601


def test_client_budget_beyond_the_deadline_stops_without_a_request(
    emu, make_settings, collect, clock
):
    settings = make_settings(max_requests_per_hour=2, retry_deadline=60)
    extract = collect(settings, "acme", clock=clock)
    # The two slots go to whichever listings ask first: failed if members got none.
    assert extract.status in ("incomplete", "failed") and extract.error_kind == "rate_limited"
    # Never past the budget; a slot taken just as the other listing gave up goes unused.
    assert 1 <= extract.request_count <= 2 and statuses(extract) == [200] * extract.request_count
    assert "BITBUCKET_MAX_REQUESTS_PER_HOUR" in extract.error


def test_near_limit_header_slows_the_pace(emu, make_settings, collect, clock):
    from tasks.bitbucket.ratelimit import RequestPacer

    emu.set_scenario(Scenario(hourly_budget=12))  # NearLimit from the 10th request (80%)
    settings = make_settings(max_requests_per_hour=3600)  # slowed pace: 1 request per second
    pacer = RequestPacer(settings.max_requests_per_hour)
    first = collect(settings, "acme", clock=clock, pacer=pacer)
    assert first.status == "complete" and not pacer.slowed and clock.sleeps == []
    second = collect(settings, "acme", clock=clock, pacer=pacer)
    assert second.status == "complete", second.error
    assert pacer.slowed
    # Requests 11 and 12 are spaced 1 s apart from the one before; one of the two may
    # already have been on its way (the other listing's) when request 10 said NearLimit.
    assert 1 <= len(clock.sleeps) <= 2
    assert all(0.5 <= wait <= 1.0 for wait in clock.sleeps), clock.sleeps
    assert 429 not in statuses(second)


def test_a_body_that_inflates_past_the_limit_is_cut_not_held(
    settings_at, collect, clock, one_member_page, monkeypatch
):
    """A gzip bomb: a few KB on the wire, far more once decoded. The read stops at the
    limit (here 64 KiB; 8 MiB in use), keeps what it read, and the workspace fails at once
    as an anomaly: asking again would fetch the same body."""
    import gzip
    import json

    import tasks.bitbucket.client as client

    monkeypatch.setattr(client, "MAX_BODY_BYTES", 64 * 1024)
    page = json.dumps(one_member_page).encode()
    bomb = gzip.compress(page[:-1] + b" " * 2_000_000 + page[-1:])  # valid JSON, 2 MB of space
    assert len(bomb) < 10_000

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/members"):
            return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
        return httpx.Response(200, json=one_member_page)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        settings = settings_at("http://127.0.0.1:9/2.0", "t-bomb", max_attempts=2)
        extract = collect(settings, "acme", clock=clock, client=http)
    assert extract.status == "failed", extract.error
    assert extract.error_kind == "anomaly"
    assert "body over 65,536 bytes, decoded" in extract.error
    assert "Nothing more was read" in extract.error
    kept = [page for page in extract.pages if page.listing == "members"]
    assert len(kept) == 1 and len(kept[0].body) == 64 * 1024
    assert clock.sleeps == []  # no wait for a retry


def test_a_token_the_server_echoes_is_masked_even_when_cut_short(
    settings_at, collect, clock, caplog
):
    """The server's message is cut to its first 300 characters before it reaches the error;
    a token echoed across the cut left all but its last characters in the error, the log,
    the evidence and the reports."""
    caplog.set_level(logging.DEBUG)
    token = "t0ken-echoed-by-a-hostile-server-0123456789"
    message = "x" * (300 - len(token) + 1) + token  # the cut drops the token's last character

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"type": "error", "error": {"message": message}})

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        settings = settings_at("http://127.0.0.1:9/2.0", token)
        extract = collect(settings, "acme", clock=clock, client=http)
    assert extract.status == "failed" and "***" in extract.error
    for shown in (extract.error, caplog.text):
        assert token[:8] not in shown and token[-9:-1] not in shown


def test_a_body_that_echoes_the_token_is_kept_masked_and_the_read_is_not_complete(
    settings_at, collect, clock, one_member_page
):
    """Raw pages are kept as received, but a token must never reach the evidence file: a
    response that contains it is kept with the token masked, and the run says so."""
    token = "t0ken-echoed-in-a-page-body-0123456789"
    page = {**one_member_page, "debug": f"Authorization: Bearer {token}"}

    with httpx.Client(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=page))
    ) as http:
        settings = settings_at("http://127.0.0.1:9/2.0", token)
        extract = collect(settings, "acme", clock=clock, client=http)
    assert extract.status == "incomplete" and extract.error_kind == "anomaly"
    assert "response(s) contained the credentials, which were masked" in extract.error
    assert all(token.encode() not in page.body for page in extract.pages)
    assert b"Authorization: Bearer ***" in extract.pages[0].body
