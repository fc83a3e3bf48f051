"""Reading the organization directory with the Bitbucket client's pieces, over real loopback
HTTP against the emulator: whole reads, every fault, and the Admin API key never leaking."""

from __future__ import annotations

import logging
import random
from datetime import date

import pytest

from emulator import Scenario, WorkspaceSpec, run_emulator
from tasks.atlassian.config import AdminApiKey, DirectorySettings, directory_settings_from_env
from tasks.atlassian.extract import directory_url, extract_directory
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.ratelimit import RequestPacer
from tasks.identity import directory_index
from tasks.vocabulary import ErrorKind, Listing, RunStatus

DAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def org_emu():
    """An organization of its own: the folder's emulator holds a 10,000-member workspace,
    whose directory would make every read here a hundred pages long."""
    with run_emulator([WorkspaceSpec("acme", members=250, seed=7)], day=DAY) as emulator:
        yield emulator


@pytest.fixture
def emu(org_emu):
    org_emu.set_scenario(Scenario())
    yield org_emu
    org_emu.set_scenario(Scenario())


@pytest.fixture
def read(emu, settings_at):
    """read(key=..., org_id=..., clock=..., **settings): one directory read, fresh pacer."""

    def run(*, key=None, org_id=None, clock=None, **overrides):
        auth = AdminApiKey(key or emu.admin_api_key)
        http = settings_at(emu.admin_api_url, "", auth=auth, **overrides)
        settings = DirectorySettings(org_id=org_id or emu.org_id, http=http)
        return extract_directory(
            settings,
            clock=clock,
            pacer=RequestPacer(http.max_requests_per_hour),
            rng=random.Random(1),
        )

    return run


def test_reads_every_user_once_and_keeps_every_page(emu, read, clock):
    directory = read(clock=clock)
    assert (directory.status, directory.error) == (RunStatus.COMPLETE, None)
    truth = emu.expected_directory()
    assert directory.users_read == len(truth) and len(directory.pages) == -(-len(truth) // 100)
    assert directory.emulated
    assert all(page.listing == Listing.DIRECTORY for page in directory.pages)
    assert directory.pages[0].url == directory_url(emu.admin_api_url, emu.org_id)
    assert "&cursor=" in directory.pages[1].url
    assert set(directory_index(directory.pages)) == {user["accountId"] for user in truth}
    assert directory.source == f"{emu.admin_api_url}/admin/v2/orgs/{emu.org_id}"


def test_429_waits_until_the_reset_time_it_names(emu, read, clock):
    emu.set_scenario(Scenario(fault_listing="directory", rate_limit_storm=2, retry_after_s=40))
    directory = read(clock=clock)
    assert directory.status == RunStatus.COMPLETE
    assert [page.status_code for page in directory.pages[:3]] == [429, 429, 200]
    assert len(clock.sleeps) == 2 and all(35 < wait <= 41 for wait in clock.sleeps)


def test_truncated_json_is_retried(emu, read, clock):
    emu.set_scenario(Scenario(fault_listing="directory", truncated_json=1))
    directory = read(clock=clock)
    assert directory.status == RunStatus.COMPLETE
    assert [page.status_code for page in directory.pages][:2] == [200, 200]
    assert directory.request_count == len(directory.pages) == 1 + -(-directory.users_read // 100)


def test_cursor_loop_is_an_incomplete_read(emu, read, clock):
    emu.set_scenario(Scenario(fault_listing="directory", next_loop=True))
    directory = read(clock=clock)
    assert (directory.status, directory.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.ANOMALY)
    assert "next-link loop" in directory.error and "repeats page 1" in directory.error
    assert "no member passes on atlassian_2sv or idp_sso" in directory.error


def test_key_revoked_halfway_is_an_incomplete_read_with_what_to_do(emu, read, clock):
    emu.set_scenario(Scenario(fault_listing="directory", fault_after=1, auth_failures=1))
    directory = read(clock=clock)
    assert (directory.status, directory.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.AUTH)
    assert [page.status_code for page in directory.pages] == [200, 401]  # not retried
    assert "HTTP 401" in directory.error and "ATLASSIAN_ADMIN_API_KEY" in directory.error


@pytest.mark.parametrize(
    ("key", "org_id", "kind", "said"),
    [
        ("wrong-key-0x7f1e", None, ErrorKind.AUTH, "create a new one at admin.atlassian.com"),
        (None, "no-such-org", ErrorKind.NOT_FOUND, "Check ATLASSIAN_ORG_ID"),
    ],
)
def test_refused_reads_fail_at_once_naming_what_to_fix(read, clock, key, org_id, kind, said):
    directory = read(key=key, org_id=org_id, clock=clock)
    assert (directory.status, directory.error_kind) == (RunStatus.FAILED, kind)
    assert said in directory.error and clock.sleeps == []


def test_retry_deadline_passing_midway_keeps_what_was_read(emu, read, clock):
    emu.set_scenario(Scenario(fault_listing="directory", fault_after=1, html_errors=50))
    directory = read(clock=clock, retry_deadline=0.5)
    assert (directory.status, directory.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.TRANSIENT)
    assert directory.pages[0].status_code == 200 and directory.pages[-1].status_code == 502
    assert "at page 2 after" in directory.error, "the page that failed, not the first"
    assert "BITBUCKET_RETRY_DEADLINE" in directory.error


def test_the_key_never_leaks(emu, read, clock, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    wrong = "wrong-admin-key-0x5eed"
    texts = []
    for key, scenario in [
        (None, Scenario(fault_listing="directory", rate_limit_storm=1, truncated_json=1)),
        (None, Scenario(fault_listing="directory", next_loop=True)),
        (None, Scenario(fault_listing="directory", fault_after=1, auth_failures=1)),
        (wrong, Scenario()),
    ]:
        emu.set_scenario(scenario)
        directory = read(key=key, clock=clock)
        texts += [str(directory.error), repr(directory)]
        texts += [page.url + page.body.decode("utf-8", "replace") for page in directory.pages]
    env = {"ATLASSIAN_ORG_ID": emu.org_id, "ATLASSIAN_ADMIN_API_KEY": emu.admin_api_key}
    texts += [repr(directory_settings_from_env(env)), str(directory_settings_from_env(env))]
    haystack = "\n".join(texts) + "\n" + caplog.text
    assert "DEBUG" in caplog.text and "page 1" in caplog.text  # the capture did see the reads
    assert emu.admin_api_key not in haystack and wrong not in haystack


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"ATLASSIAN_ORG_ID": "org-1"}, "ATLASSIAN_ADMIN_API_KEY is missing"),
        ({"ATLASSIAN_ADMIN_API_KEY": "k-secret-1"}, "ATLASSIAN_ORG_ID is missing"),
        ({"ATLASSIAN_ADMIN_API_URL": "https://x.example"}, "ATLASSIAN_ORG_ID and"),
        (
            {"ATLASSIAN_ORG_ID": "org 1", "ATLASSIAN_ADMIN_API_KEY": "k-secret-1"},
            "is not an organization id",
        ),
        (
            {"ATLASSIAN_ORG_ID": "org-1", "ATLASSIAN_ADMIN_API_KEY": "k-secret-1",
             "ATLASSIAN_ADMIN_API_URL": "http://api.example.com"},
            "must be an https:// URL",
        ),
    ],
)  # fmt: skip
def test_partial_configuration_is_a_clear_error(env, said):
    with pytest.raises(ConfigError, match=said) as raised:
        directory_settings_from_env(env)
    assert "k-secret-1" not in str(raised.value)


def test_no_directory_configured_is_none():
    assert directory_settings_from_env({"BITBUCKET_TOKEN": "t"}) is None


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"data": [{"accountId": "a"}, {"accountId": "a"}], "links": {"next": null}}',
         "listed twice"),
        (b'{"data": [{"email": "x@example.com"}], "links": {}}', "user without an accountId"),
        (b'{"data": [{"accountId": "a"}], "links": {"next": 5}}', "not a cursor"),
        (b'{"data": [{"accountId": "a"}], "links": "c2"}', "`links` that is not a mapping"),
    ],
)  # fmt: skip
def test_a_directory_that_cannot_be_trusted_is_incomplete(
    canned_server, settings_at, clock, body, said
):
    server = canned_server(200, body)
    http = settings_at(server.base_url, "", auth=AdminApiKey("k-canned-1"))
    directory = extract_directory(DirectorySettings("org-1", http), clock=clock)
    assert (directory.status, directory.error_kind) == (RunStatus.INCOMPLETE, ErrorKind.ANOMALY)
    assert said in directory.error and len(directory.pages) == 1


def test_the_wait_comes_from_retry_after_else_from_x_ratelimit_reset():
    from datetime import UTC, datetime

    from tasks.atlassian.messages import explain_status
    from tasks.bitbucket.decisions import Context, Fail, Outcome, Retry, classify

    now = datetime(2026, 11, 27, 6, tzinfo=UTC)
    context = Context("org-1", Listing.DIRECTORY, "https://api.atlassian.com",
                      "ATLASSIAN_ADMIN_API_KEY", explain=explain_status)  # fmt: skip
    reset = Outcome(status_code=429, rate_limit_reset="2026-11-27T06:00:12Z")
    both = Outcome(status_code=429, retry_after="3", rate_limit_reset="2026-11-27T06:00:12Z")
    assert classify(reset, context, now=now) == Retry(
        12.0, "HTTP 429 (a non-JSON body)", rate_limited=True
    )
    assert classify(both, context, now=now).delay_hint == 3.0
    refused = classify(Outcome(status_code=403, body=b'{"code": 403, "message": "Forbidden"}'),
                       context, now=now)  # fmt: skip
    assert isinstance(refused, Fail) and refused.kind == ErrorKind.PERMISSION
    assert "read:directories:admin" in refused.message and "Forbidden" in refused.message
