"""Settings from the environment: one auth mode, clear ConfigErrors, no secret in any repr."""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from tasks.bitbucket.auth import ApiTokenBasic, BearerToken, OAuthClientCredentials
from tasks.bitbucket.config import DEFAULT_API_URL, BitbucketSettings, settings_from_env
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.secret import Secret, scrub

TOKEN = "tok-3f9a1c77e2b04d"
API_TOKEN = "atl-api-77c1e0aa93"
CLIENT_SECRET = "oauth-secret-19be4c0d"


def test_bearer_defaults():
    settings = settings_from_env({"BITBUCKET_TOKEN": TOKEN})
    assert isinstance(settings.auth, BearerToken)
    assert settings.auth.token.reveal() == TOKEN
    assert settings.api_url == DEFAULT_API_URL
    assert settings.max_requests_per_hour == 1000
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert "***" in repr(settings)


def test_basic_and_oauth_modes():
    basic = settings_from_env(
        {"BITBUCKET_EMAIL": "me@example.com", "BITBUCKET_API_TOKEN": API_TOKEN}
    )
    assert isinstance(basic.auth, ApiTokenBasic) and basic.auth.email == "me@example.com"
    assert API_TOKEN not in repr(basic)
    oauth = settings_from_env(
        {
            "BITBUCKET_OAUTH_CLIENT_ID": "cid",
            "BITBUCKET_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "BITBUCKET_OAUTH_TOKEN_URL": "http://127.0.0.1:9/site/oauth2/access_token",
            "BITBUCKET_API_URL": "http://localhost:9/2.0/",
        }
    )
    assert isinstance(oauth.auth, OAuthClientCredentials)
    assert oauth.auth.token_url == "http://127.0.0.1:9/site/oauth2/access_token"
    assert oauth.api_url == "http://localhost:9/2.0"
    assert CLIENT_SECRET not in repr(oauth) and CLIENT_SECRET not in repr(oauth.auth)
    default = settings_from_env(
        {"BITBUCKET_OAUTH_CLIENT_ID": "c", "BITBUCKET_OAUTH_CLIENT_SECRET": "s"}
    )
    assert default.auth.token_url == "https://bitbucket.org/site/oauth2/access_token"


def test_tuning_variables():
    settings = settings_from_env(
        {
            "BITBUCKET_TOKEN": TOKEN,
            "BITBUCKET_READ_TIMEOUT": "4.5",
            "BITBUCKET_CONNECT_TIMEOUT": "2",
            "BITBUCKET_RETRY_DEADLINE": "60",
            "BITBUCKET_BACKOFF_CAP": "5",
            "BITBUCKET_BACKOFF_BASE": "0",
            "BITBUCKET_MAX_REQUESTS_PER_HOUR": "5000",
        }
    )
    assert (settings.read_timeout, settings.connect_timeout) == (4.5, 2.0)
    assert (settings.retry_deadline, settings.backoff_cap, settings.backoff_base) == (60, 5, 0)
    assert settings.max_requests_per_hour == 5000
    assert settings.timeout.read == 4.5 and settings.timeout.connect == 2.0


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["BITBUCKET_TOKEN", "BITBUCKET_EMAIL", "BITBUCKET_OAUTH_CLIENT_ID"]),
        ({"BITBUCKET_TOKEN": "  "}, ["BITBUCKET_TOKEN"]),  # blank counts as unset
        ({"BITBUCKET_EMAIL": "me@example.com"}, ["BITBUCKET_API_TOKEN is missing"]),
        ({"BITBUCKET_API_TOKEN": API_TOKEN}, ["BITBUCKET_EMAIL is missing"]),
        ({"BITBUCKET_OAUTH_CLIENT_ID": "c"}, ["BITBUCKET_OAUTH_CLIENT_SECRET is missing"]),
        (
            {"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_API_TOKEN": API_TOKEN},
            ["ambiguous", "BITBUCKET_TOKEN", "BITBUCKET_API_TOKEN"],
        ),
        (
            {"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_OAUTH_CLIENT_SECRET": CLIENT_SECRET},
            ["ambiguous", "BITBUCKET_OAUTH_CLIENT_SECRET"],
        ),
        ({"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_READ_TIMEOUT": "soon"}, ["BITBUCKET_READ_TIMEOUT"]),
        (
            {"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_RETRY_DEADLINE": "-1"},
            ["BITBUCKET_RETRY_DEADLINE"],
        ),
        (
            {"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_MAX_REQUESTS_PER_HOUR": "0"},
            ["BITBUCKET_MAX_REQUESTS_PER_HOUR"],
        ),
        ({"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_API_URL": "http://api.example.com/2.0"}, ["https"]),
        (
            {"BITBUCKET_TOKEN": TOKEN, "BITBUCKET_API_URL": "https://u:p@x.example/2.0"},
            ["credentials"],
        ),
    ],
)
def test_config_errors_name_the_variables(env, names):
    with pytest.raises(ConfigError) as caught:
        settings_from_env(env)
    message = str(caught.value)
    for name in names:
        assert name in message
    for secret in (TOKEN, API_TOKEN, CLIENT_SECRET):
        assert secret not in message


@pytest.mark.parametrize(
    ("variable", "value", "takes"),
    [
        ("BITBUCKET_MAX_ATTEMPTS", "0.5", "a whole number of at least 1"),
        ("BITBUCKET_MAX_REQUESTS_PER_HOUR", "1e999", "a positive number"),  # was OverflowError
        ("BITBUCKET_READ_TIMEOUT", "inf", "a positive number"),  # a wait without a ceiling
        ("BITBUCKET_BACKOFF_BASE", "-1", "a number of 0 or more"),
        # Accepted once, then the alarm thread that times responses died of an overflow.
        ("BITBUCKET_RESPONSE_DEADLINE", "1e300", "at most 604800"),
        ("BITBUCKET_RETRY_DEADLINE", "604801", "at most 604800"),
        ("BITBUCKET_MAX_ATTEMPTS", "1e7", "at most 1e+06"),
    ],
)
def test_tuning_numbers_out_of_range_say_what_they_take(variable, value, takes):
    with pytest.raises(ConfigError, match=re.escape(f"{variable} must be {takes}, got {value!r}")):
        settings_from_env({"BITBUCKET_TOKEN": TOKEN, variable: value})


def test_settings_validate_direct_construction():
    with pytest.raises(ConfigError, match="read_timeout"):
        BitbucketSettings(auth=BearerToken(TOKEN), read_timeout=0)


def test_secret_wrapper():
    secret = Secret(TOKEN)
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert secret == Secret(TOKEN) and secret != Secret("other")
    assert scrub(f"server said {TOKEN}!", [TOKEN]) == "server said ***!"


def test_settings_survive_pickle_and_deepcopy():
    settings = settings_from_env(
        {"BITBUCKET_OAUTH_CLIENT_ID": "cid", "BITBUCKET_OAUTH_CLIENT_SECRET": CLIENT_SECRET}
    )
    for clone in (pickle.loads(pickle.dumps(settings)), copy.deepcopy(settings)):  # noqa: S301
        assert clone.auth.client_secret.reveal() == CLIENT_SECRET
        assert clone.auth.token_fetches == 0 and CLIENT_SECRET not in repr(clone)
