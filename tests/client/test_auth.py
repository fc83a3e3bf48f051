"""Each auth mode against the emulator, OAuth refresh, and the 4xx messages that say what to fix."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator import Scenario
from tasks.bitbucket.auth import ApiTokenBasic, BearerToken, OAuthClientCredentials
from tasks.bitbucket.config import settings_from_env
from tasks.normalise import observations_from_pages


class ManualMonotonic:
    """A monotonic clock that moves only when told: token expiry without waiting an hour."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def oauth(emu, monotonic=None) -> OAuthClientCredentials:
    kwargs = {"monotonic": monotonic} if monotonic else {}
    return OAuthClientCredentials(
        emu.oauth_client_id, emu.oauth_client_secret, emu.token_url, **kwargs
    )


def known_states(extract) -> set[str]:
    return set(observations_from_pages(extract.workspace, extract.pages)["two_step_state"])


def test_basic_api_token(emu, make_settings, collect, member_keys, expected_keys):
    extract = collect(make_settings(ApiTokenBasic(emu.email, emu.api_token)), "acme")
    assert extract.status == "complete", extract.error
    assert member_keys(extract) == expected_keys("acme")
    assert "enabled" in known_states(extract)  # an admin: the 2SV field is present


def test_settings_from_env_against_the_emulator(emu, collect):
    settings = settings_from_env(
        {
            "BITBUCKET_API_URL": emu.base_url,
            "BITBUCKET_OAUTH_CLIENT_ID": emu.oauth_client_id,
            "BITBUCKET_OAUTH_CLIENT_SECRET": emu.oauth_client_secret,
            "BITBUCKET_OAUTH_TOKEN_URL": emu.token_url,
        }
    )
    extract = collect(settings, "hundred-one")
    assert extract.status == "complete", extract.error


def test_oauth_token_is_fetched_once_and_not_counted(
    emu, make_settings, collect, member_keys, expected_keys
):
    auth = oauth(emu)
    before = emu.request_count
    extract = collect(make_settings(auth), "acme")
    assert extract.status == "complete", extract.error
    assert auth.token_fetches == 1
    assert extract.request_count == 6
    assert emu.request_count - before == 7  # 6 API requests + 1 token request
    assert member_keys(extract) == expected_keys("acme")
    assert "enabled" in known_states(extract)


def test_oauth_refreshes_before_expiry(emu, make_settings, collect):
    monotonic = ManualMonotonic()
    auth = oauth(emu, monotonic)
    settings = make_settings(auth)
    assert collect(settings, "solo").status == "complete"
    monotonic.now += 3500  # 100 s left: more than the 60 s margin, keep the token
    assert collect(settings, "solo").status == "complete"
    assert auth.token_fetches == 1
    monotonic.now += 50  # 50 s left: inside the margin, refresh first
    extract = collect(settings, "solo")
    assert extract.status == "complete", extract.error
    assert auth.token_fetches == 2
    assert [page.status_code for page in extract.pages] == [200, 200]  # no 401 on the way


def test_oauth_refreshes_once_on_401(emu, make_settings, collect, caplog):
    caplog.set_level(logging.WARNING, logger="bb2sv.bitbucket")
    emu.set_scenario(Scenario(oauth_expires_in=1))  # real seconds, on the server
    auth = oauth(emu, ManualMonotonic())  # the client never sees time pass
    settings = make_settings(auth)
    assert collect(settings, "solo").status == "complete"
    time.sleep(1.2)  # the server has now expired the token the client still holds
    extract = collect(settings, "solo")
    assert extract.status == "complete", extract.error
    # Both listings start at once with the expired token; each retries after its own 401
    # (the one that asks after the refresh is already served with the new token).
    by_listing = {
        listing: [page.status_code for page in extract.pages if page.listing == listing]
        for listing in ("members", "permissions")
    }
    assert by_listing["members"] in ([401, 200], [200])
    assert by_listing["permissions"] in ([401, 200], [200])
    assert 401 in by_listing["members"] + by_listing["permissions"]
    assert extract.request_count == len(extract.pages)
    assert auth.token_fetches == 2
    assert "fetching a new OAuth token" in caplog.text


def test_oauth_token_shared_by_concurrent_workspaces(emu, make_settings, collect):
    auth = oauth(emu)
    settings = make_settings(auth)
    workspaces = ["acme", "hundred", "hundred-one", "solo", "hundred", "acme"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        extracts = list(pool.map(lambda ws: collect(settings, ws), workspaces))
    assert [extract.status for extract in extracts] == ["complete"] * 6
    assert auth.token_fetches == 1


def test_oauth_wrong_secret_fails_with_a_clear_message(emu, make_settings, collect):
    auth = OAuthClientCredentials(emu.oauth_client_id, "wrong-secret-5521", emu.token_url)
    extract = collect(make_settings(auth), "acme")
    assert (extract.status, extract.error_kind) == ("failed", "auth")
    assert "Could not get an OAuth token to read workspace 'acme'" in extract.error
    assert "HTTP 401" in extract.error
    assert "BITBUCKET_OAUTH_CLIENT_ID and BITBUCKET_OAUTH_CLIENT_SECRET" in extract.error
    assert "wrong-secret-5521" not in extract.error
    assert extract.pages == []  # the token endpoint's answers are never kept


@pytest.mark.parametrize(
    ("auth_of", "variables"),
    [
        (lambda emu: BearerToken("revoked-token-8812"), "check BITBUCKET_TOKEN"),
        (
            lambda emu: ApiTokenBasic(emu.email, "revoked-api-token-8812"),
            "check BITBUCKET_EMAIL and BITBUCKET_API_TOKEN",
        ),
    ],
)
def test_401_is_not_retried_and_names_the_variables(
    emu, make_settings, collect, auth_of, variables
):
    extract = collect(make_settings(auth_of(emu)), "acme")
    assert (extract.status, extract.error_kind) == ("failed", "auth")
    # Not retried: at most the one request each listing had sent when the first 401 came.
    assert extract.request_count <= 2 and {p.status_code for p in extract.pages} == {401}
    assert "workspace 'acme'" in extract.error
    assert (
        "HTTP 401: Token is invalid, expired, or not supported for this endpoint." in extract.error
    )
    assert variables in extract.error
    assert "8812" not in extract.error


def test_403_shows_granted_and_required_scopes(emu, make_settings, collect):
    extract = collect(make_settings(BearerToken(emu.scopeless_token)), "acme")
    assert (extract.status, extract.error_kind) == ("failed", "permission")
    assert extract.request_count <= 2  # one per listing at most
    assert "of workspace 'acme'" in extract.error
    assert (
        "Granted scopes: read:user:bitbucket; required: read:workspace:bitbucket." in extract.error
    )
    assert "workspace admin" in extract.error and "two-step verification" in extract.error


def test_404_names_the_workspace_and_the_slug(emu, make_settings, collect):
    extract = collect(make_settings(), "no-such-ws")
    assert (extract.status, extract.error_kind) == ("failed", "not_found")
    assert extract.request_count <= 2  # one per listing at most
    assert "No workspace 'no-such-ws'" in extract.error
    assert "No workspace with identifier 'no-such-ws'." in extract.error  # the server's words
    assert "slug" in extract.error


def test_400_is_bad_request_and_not_retried(settings_at, collect, canned_server):
    body = b'{"type": "error", "error": {"message": "Invalid pagelen."}}'
    server = canned_server(400, body)
    extract = collect(settings_at(server.base_url, "t-400"), "acme")
    assert (extract.status, extract.error_kind) == ("failed", "bad_request")
    assert extract.request_count == len(server.heads) <= 2  # one per listing at most
    assert "HTTP 400: Invalid pagelen." in extract.error and "workspace 'acme'" in extract.error


def test_403_with_an_html_body_still_gives_a_message(settings_at, collect, canned_server):
    server = canned_server(403, b"<html><body>Forbidden</body></html>", "text/html")
    extract = collect(settings_at(server.base_url, "t-403"), "acme")
    assert (extract.status, extract.error_kind) == ("failed", "permission")
    assert "HTTP 403: an HTML page" in extract.error


def test_no_secret_in_logs_errors_or_reprs(emu, make_settings, collect, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    oauth_auth = oauth(emu)
    runs = [
        (BearerToken(emu.admin_token), "acme", Scenario(rate_limit_storm=1, html_errors=1)),
        (ApiTokenBasic(emu.email, emu.api_token), "acme", Scenario(truncated_json=1)),
        (oauth_auth, "acme", Scenario(next_loop=True)),
        (BearerToken(emu.scopeless_token), "acme", Scenario()),
        (BearerToken("bogus-token-0x51f2e"), "acme", Scenario()),
        (ApiTokenBasic(emu.email, "bogus-api-token-0x77"), "no-such-ws", Scenario()),
    ]
    texts = []
    for auth, workspace, scenario in runs:
        emu.set_scenario(scenario)
        settings = make_settings(auth)
        extract = collect(settings, workspace)
        texts += [repr(settings), str(settings), repr(auth), str(extract.error)]
        texts += [repr(listing) for listing in extract.listings]
    secrets = [
        emu.admin_token,
        emu.scopeless_token,
        emu.api_token,
        emu.oauth_client_secret,
        "bogus-token-0x51f2e",
        "bogus-api-token-0x77",
        *oauth_auth.secret_values(),  # includes the OAuth access token it was issued
    ]
    assert len(oauth_auth.secret_values()) == 3
    haystack = "\n".join(texts) + "\n" + caplog.text
    assert "DEBUG" in caplog.text and "page 1" in caplog.text  # the capture did see the run
    for secret in secrets:
        assert secret not in haystack


def test_oauth_token_endpoint_outage_is_transient(make_settings, collect, canned_server, clock):
    server = canned_server(503, b"<html>down</html>", "text/html")
    auth = OAuthClientCredentials("cid", "secret-outage-42", server.base_url + "/token")
    extract = collect(make_settings(auth, retry_deadline=2), "acme", clock=clock)
    assert (extract.status, extract.error_kind) == ("failed", "transient")
    # The token request was retried: each listing backed off after each try but its last.
    assert len(clock.sleeps) + 1 <= len(server.heads) <= len(clock.sleeps) + 2
    assert len(server.heads) > 2
    assert server.heads[0].startswith(b"POST /2.0/token HTTP/1.1")
    assert "OAuth token URL" in extract.error and "HTTP 503" in extract.error
    assert extract.request_count == 0 and extract.pages == []  # no API request went out
