"""The policy's identity keys: accepted_factors, sso and scope, each checked with a message
that names the field, the line and what to write instead."""

from __future__ import annotations

import pytest

from tasks.identity import APP_USER
from tasks.policy import DEFAULT_POLICY, PolicyError, parse_policy
from tasks.vocabulary import Factor

SSO = """\
sso:
  email_domains: ["@Example.COM", corp.example]
  identity_provider: Okta
  attestation: MFA every session, SEC-204
"""


def test_defaults_accept_bitbucket_2sv_and_leave_app_users_out():
    rules = DEFAULT_POLICY.identity
    assert rules.accepted_factors == (Factor.BITBUCKET_2SV,)
    assert rules.exclude_account_types == (APP_USER,) and rules.sso is None


def test_every_key_read_and_normalised():
    policy = parse_policy(
        "accepted_factors: [idp_sso, atlassian_2sv, bitbucket_2sv]\n" + SSO
        + "scope:\n  exclude_account_types: [app_user, team]\n"
    )  # fmt: skip
    rules = policy.identity
    assert rules.accepted_factors == tuple(Factor)  # precedence order, whatever the file says
    assert rules.sso.email_domains == ("example.com", "corp.example")
    assert (rules.sso.identity_provider, rules.sso.attestation) == (
        "Okta", "MFA every session, SEC-204"
    )  # fmt: skip
    assert rules.exclude_account_types == (APP_USER, "team")
    assert parse_policy("scope: {exclude_account_types: []}").identity.exclude_account_types == ()


@pytest.mark.parametrize(
    ("text", "field", "said"),
    [
        ("accepted_factors: [sms]", "accepted_factors[0]", "not a second factor"),
        ("accepted_factors: [exception]", "accepted_factors", "exceptions always apply"),
        ("accepted_factors: []", "accepted_factors", "name at least one"),
        ("accepted_factors: bitbucket_2sv", "accepted_factors", "expected a list"),
        ("accepted_factors: [idp_sso]", "sso", "an sso: block must say"),
        (SSO, "sso", "does not list idp_sso"),
        ("accepted_factors: [idp_sso]\n" + SSO.replace("corp.example", "'corp example'"),
         "sso.email_domains[1]", "not an email domain"),
        ("accepted_factors: [idp_sso]\nsso: {email_domains: [a.example], identity_provider: X}",
         "sso.attestation", "required field is missing"),
        ("accepted_factors: [idp_sso]\n" + SSO.replace("Okta", "''"),
         "sso.identity_provider", "must not be empty"),
        ("scope: {exclude_account_types: [user]}", "scope.exclude_account_types",
         "no people in scope"),
        ("scope: {exclude: [app_user]}", "scope.exclude", "unknown key"),
        ("scope: {exclude_account_types: [app_user, app-user]}",
         "scope.exclude_account_types[1]", "'app-user' is not a type of Bitbucket account"),
    ],
)  # fmt: skip
def test_bad_identity_keys_are_named_with_their_line(text, field, said):
    with pytest.raises(PolicyError) as raised:
        parse_policy("grace_days: 7\n" + text, "policy.yaml")
    message = str(raised.value)
    assert f"{field}:" in message and said in message
    assert "policy.yaml line" in message
