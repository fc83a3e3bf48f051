"""Every wait has a ceiling: whole responses, attempts per page, Retry-After, stops.

Real HTTP against the emulator. Waits the client chooses go through FakeClock (conftest);
the network itself is real, so a slow-drip body really drips.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from emulator import Scenario
from tasks.bitbucket.auth import BearerToken
from tasks.bitbucket.clock import SYSTEM_CLOCK
from tasks.bitbucket.config import settings_from_env
from tasks.bitbucket.exceptions import ConfigError
from tasks.signals import STOP
from tasks.vocabulary import ErrorKind, RunStatus


def requests_to(emu, listing: str) -> int:
    """Requests the emulator has had for `listing` ("members" or "permissions")."""
    return sum(path.endswith(f"/{listing}") for path in emu.request_paths())


@pytest.fixture(autouse=True)
def no_stop_left_behind():
    STOP.clear()
    yield
    STOP.clear()


def test_a_slow_drip_body_ends_at_the_whole_response_deadline(emu, make_settings, collect, clock):
    # 16 bytes every 0.2 s: each chunk beats the 2 s read timeout, the page would take minutes.
    emu.set_scenario(
        Scenario(drip_responses=1, drip_interval_s=0.2, fault_listing="members", fault_after=1)
    )
    extract = collect(make_settings(response_deadline=0.6), "acme", clock=clock)
    assert extract.status == RunStatus.COMPLETE, extract.error
    cut = extract.pages[1]
    assert cut.status_code == 200 and 0 < len(cut.body) < len(extract.pages[2].body)
    assert extract.request_count == len(extract.pages) == 7  # the cut response is kept too


def test_the_retry_deadline_bounds_a_dripping_page(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(drip_responses=50, drip_interval_s=0.2, fault_listing="members"))
    extract = collect(
        make_settings(response_deadline=30, retry_deadline=0.7, backoff_cap=0.05),
        "acme",
        clock=clock,
    )
    assert (extract.status, extract.error_kind) == (RunStatus.FAILED, ErrorKind.TRANSIENT)
    assert "at page 1" in extract.error and "BITBUCKET_RETRY_DEADLINE" in extract.error
    assert "whole-response deadline" in extract.error


def test_attempts_per_page_are_capped(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(html_errors=1000, fault_listing="permissions"))
    asked, backoff = requests_to(emu, "members"), clock.sleep

    def backoff_once_members_were_asked_for(seconds: float) -> None:
        # The backoffs cost no time (FakeClock), so the permissions listing could give up,
        # and stop the members listing, before that one asked for its three pages. Each
        # backoff first waits (really, 5 s at most) until it has; a page asked for when the
        # stop comes is still answered and kept.
        deadline = time.monotonic() + 5
        while requests_to(emu, "members") - asked < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        backoff(seconds)

    clock.sleep = backoff_once_members_were_asked_for
    extract = collect(make_settings(max_attempts=3), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.TRANSIENT)
    assert [page.status_code for page in extract.pages] == [200, 200, 200, 502, 502, 502]
    assert len(clock.sleeps) == 2
    message = extract.error
    for said in ("permissions of workspace 'acme' at page 1", "3 attempt(s)", "HTTP 502",
                 "BITBUCKET_MAX_ATTEMPTS", "Run again later"):  # fmt: skip
        assert said in message


def test_a_retry_after_past_cap_and_deadline_names_the_cap_and_when(
    emu, make_settings, collect, clock
):
    """Raising only the deadline would run into the cap next: the cap's message, which says
    when the server will answer, comes first. Waits read as seconds, not 3.6e+03."""
    emu.set_scenario(Scenario(rate_limit_storm=5, retry_after_s=3600))
    extract = collect(make_settings(retry_after_cap=60, retry_deadline=60), "acme", clock=clock)
    assert "the server asks to wait 3600 s, longer than the 60 s cap" in extract.error
    assert "Run again in 60 minute(s)" in extract.error
    assert "would pass" not in extract.error


def test_a_retry_after_beyond_the_cap_gives_up_at_once(emu, make_settings, collect, clock):
    emu.set_scenario(Scenario(rate_limit_storm=5, retry_after_s=120))
    extract = collect(make_settings(retry_after_cap=30, retry_deadline=600), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == (RunStatus.FAILED, ErrorKind.RATE_LIMITED)
    assert clock.sleeps == [] and extract.request_count <= 2  # one per listing at most
    assert "the server asks to wait 120 s" in extract.error
    assert (
        "BITBUCKET_RETRY_AFTER_CAP" in extract.error and "Run again in 2 minute(s)" in extract.error
    )


@pytest.mark.parametrize("bad", ["tok\nen-value", "token-value\r\nX-Evil: 1", "tok en"])
def test_a_token_that_cannot_be_a_header_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="BITBUCKET_TOKEN contains") as raised:
        settings_from_env({"BITBUCKET_TOKEN": bad})
    assert "token-value" not in str(raised.value) and "tok" not in str(raised.value).split()
    with pytest.raises(ConfigError):
        BearerToken(bad)


def test_a_trailing_line_break_is_just_trimmed():
    settings = settings_from_env({"BITBUCKET_TOKEN": "token-value\n"})
    assert settings.auth.token.reveal() == "token-value"


def extract_in_background(settings) -> tuple[threading.Thread, list]:
    """`extract_workspace` of acme on a thread, with real waits (SystemClock) and a pacer
    that never holds a request back; the extract lands in the list when it ends."""
    from tasks.bitbucket.extract import extract_workspace
    from tasks.bitbucket.ratelimit import RequestPacer

    done: list = []
    worker = threading.Thread(
        target=lambda: done.append(
            extract_workspace(settings, "acme", clock=SYSTEM_CLOCK, pacer=RequestPacer(10**6))
        )
    )
    worker.start()
    return worker, done


def stop_when(ready, background: tuple[threading.Thread, list], signal: str = "SIGTERM"):
    """Once `ready()`, request a stop; the extract, which must end within 10 s of it."""
    worker, done = background
    deadline = time.monotonic() + 30
    while not ready():
        assert worker.is_alive() and time.monotonic() < deadline, "the extraction never got there"
        worker.join(0.01)
    STOP.request(signal)
    worker.join(10)
    assert not worker.is_alive(), f"the {signal} did not reach the extraction's waits"
    (extract,) = done
    assert (extract.status, extract.error_kind) == (RunStatus.FAILED, ErrorKind.STOPPED)
    return extract


def test_a_stop_cuts_the_request_in_flight_and_keeps_what_was_read(emu, make_settings):
    """A real wait (SystemClock) on a 30 s response: the stop ends it at once."""
    emu.set_scenario(Scenario(slow_responses=1, slow_s=30, fault_listing="members", fault_after=1))
    before, asked, listed = (
        emu.request_count,
        requests_to(emu, "members"),
        requests_to(emu, "permissions"),
    )
    # The stop comes once the second members page is on its way (slowly) and the emulator
    # has the permissions listing's last request (acme: 3 pages): a stop that came as that
    # listing began a request could cut it before the request left the client, which counts
    # the attempt while the emulator never sees it.
    extract = stop_when(
        lambda: (
            requests_to(emu, "members") - asked >= 2
            and requests_to(emu, "permissions") - listed >= 3
        ),
        extract_in_background(make_settings(read_timeout=60, response_deadline=60)),
    )
    assert "stopped by SIGTERM while reading members of workspace 'acme' at page 2" in (
        extract.error
    )
    members = [page.status_code for page in extract.pages if page.listing == "members"]
    assert members == [200]  # and what the permissions listing had read by then, all kept
    assert {page.status_code for page in extract.pages} == {200}
    # The emulator counts a request when it dispatches it: the permissions listing's last
    # one may be dispatched a moment after the stop ended the extract.
    settled = time.monotonic() + 5
    while emu.request_count - before < extract.request_count and time.monotonic() < settled:
        time.sleep(0.01)
    assert extract.request_count == emu.request_count - before


def test_a_stop_ends_both_listings_in_flight(emu, make_settings):
    """Both listings wait on a 30 s response at once: one stop cuts both."""
    emu.set_scenario(Scenario(slow_responses=2, slow_s=30))  # page 1 of each listing
    before = emu.request_count
    extract = stop_when(
        lambda: emu.request_count - before >= 2,  # both first pages are on their way, slowly
        extract_in_background(make_settings(read_timeout=60, response_deadline=60)),
    )
    assert "stopped by SIGTERM while reading members" in extract.error
    for listing in extract.listings:
        assert not listing.complete and "stopped by SIGTERM" in listing.reason
    assert extract.pages == [] and extract.request_count == 2


def test_a_stop_ends_a_backoff_wait(emu, make_settings, caplog):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    emu.set_scenario(Scenario(rate_limit_storm=100, retry_after_s=50))
    extract = stop_when(
        lambda: caplog.text.count("retry 1 in 50 s") >= 2,  # both listings wait 50 s
        extract_in_background(make_settings(retry_after_cap=100)),
        signal="SIGINT",
    )
    assert extract.request_count == 2
    assert [page.status_code for page in extract.pages] == [429, 429]
    assert [page.listing for page in extract.pages] == ["members", "permissions"]


def test_an_account_id_of_the_wrong_json_type_is_incomplete_and_kept(
    emu, make_settings, collect, clock
):
    emu.set_scenario(Scenario(account_id_as_number=True, fault_listing="members"))
    extract = collect(make_settings(), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.ANOMALY)
    assert "account_id is a JSON number, not a string" in extract.error
    assert len(extract.pages) == 6 and b"557058" in extract.pages[0].body


def test_a_member_giving_a_key_twice_is_an_anomaly_and_its_page_kept(
    emu, make_settings, collect, clock
):
    """`"has_2fa_enabled": false, "has_2fa_enabled": true`: bb2sv's reader would take the
    second, DuckDB's json functions (SQL over raw_api_pages) the first. The run is not
    complete, and the page is kept as received."""
    emu.set_scenario(Scenario(two_step_key_twice=True, fault_listing="members"))
    extract = collect(make_settings(), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.ANOMALY)
    assert "page 1 gives the key 'has_2fa_enabled' twice in one object" in extract.error
    assert "bb2sv would take the last, DuckDB's json functions the first" in extract.error
    twice = b'"has_2fa_enabled":false,"has_2fa_enabled":true'
    (kept,) = [page for page in extract.pages if twice in page.body]
    assert kept.listing == "members"


@pytest.mark.parametrize(
    ("scenario", "said"),
    [
        (Scenario(size_as_text=True), "`size` is '250' (a JSON string)"),
        (Scenario(omit_size=True), "has no `size`"),
    ],
)
def test_a_size_that_is_no_count_is_logged(
    emu, make_settings, collect, clock, caplog, scenario, said
):
    caplog.set_level(logging.INFO, logger="bb2sv.bitbucket")
    emu.set_scenario(scenario)
    extract = collect(make_settings(), "acme", clock=clock)
    assert extract.status == RunStatus.COMPLETE
    assert extract.listings[0].reported_size is None
    assert said in caplog.text


def test_the_stall_is_dated_from_the_first_try_of_the_page_that_keeps_failing(
    emu, make_settings, collect, clock
):
    emu.set_scenario(Scenario(html_errors=1000, fault_listing="permissions"))
    before = clock.monotonic()
    failing = collect(make_settings(retry_deadline=2, max_attempts=1000), "acme", clock=clock)
    assert failing.status == RunStatus.INCOMPLETE
    # The members pages went through; the stall began when the permissions page was first
    # tried, and the attempt ended about one retry deadline later.
    assert before <= failing.stalled_since <= clock.monotonic() - 1.5
    emu.set_scenario(Scenario())
    assert collect(make_settings(), "acme", clock=clock).stalled_since is None
