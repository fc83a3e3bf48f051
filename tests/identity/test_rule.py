"""The per-member rule (tasks/identity.py `assess`, which runs the views' own SQL macros):
precedence of the bases, what each factor needs, scope."""

from __future__ import annotations

import pytest

from tasks.identity import IdentityRules, MemberFacts, SsoAttestation, assess
from tasks.vocabulary import Factor, MfaBasis, RunStatus, TwoStepState

ALL = IdentityRules(
    accepted_factors=tuple(Factor),
    sso=SsoAttestation(("example.com",), "Okta", "MFA every session, SEC-204"),
)
BITBUCKET_ONLY = IdentityRules()
ON, OFF, UNKNOWN = TwoStepState.ENABLED, TwoStepState.DISABLED, TwoStepState.UNKNOWN
COMPLETE = RunStatus.COMPLETE


def facts(state=OFF, *, status="active", claim="managed", mfa=None, domain="example.com",
          account_type="user") -> MemberFacts:  # fmt: skip
    return MemberFacts(state, account_type, status, claim, mfa, domain)


@pytest.mark.parametrize(
    ("member", "rules", "directory", "excepted", "basis"),
    [
        # Precedence: the first accepted factor that holds, then an exception.
        (facts(ON, mfa=True), ALL, COMPLETE, True, MfaBasis.BITBUCKET_2SV),
        (facts(OFF, mfa=True), ALL, COMPLETE, True, MfaBasis.ATLASSIAN_2SV),
        (facts(UNKNOWN, mfa=False), ALL, COMPLETE, True, MfaBasis.IDP_SSO),
        (facts(OFF, mfa=False, domain="other.org"), ALL, COMPLETE, True, MfaBasis.EXCEPTION),
        (facts(OFF, mfa=False, domain="other.org"), ALL, COMPLETE, False, None),
        # A factor counts only when the policy accepts it.
        (facts(OFF, mfa=True), BITBUCKET_ONLY, COMPLETE, False, None),
        (facts(ON), IdentityRules(accepted_factors=(Factor.ATLASSIAN_2SV,)), COMPLETE, False,
         None),
        (facts(ON, mfa=False), IdentityRules(accepted_factors=(Factor.IDP_SSO,),
                                             sso=ALL.sso), COMPLETE, False, MfaBasis.IDP_SSO),
        # idp_sso needs an ACTIVE MANAGED account in an attested domain.
        (facts(OFF, claim="unmanaged"), ALL, COMPLETE, False, None),
        (facts(OFF, status="inactive"), ALL, COMPLETE, False, None),
        (facts(OFF, status="closed", mfa=True), ALL, COMPLETE, False, None),
        (facts(OFF, domain=None), ALL, COMPLETE, False, None),
        # Not listed by the directory at all: a member outside the organization.
        (MemberFacts(OFF), ALL, COMPLETE, False, None),
        # Only a real mfaEnabled true counts.
        (facts(OFF, mfa=None, domain="other.org"), ALL, COMPLETE, False, None),
        # The directory counts only when the run read it whole.
        (facts(OFF, mfa=True), ALL, RunStatus.INCOMPLETE, False, None),
        (facts(OFF), ALL, RunStatus.FAILED, False, None),
        (facts(OFF, mfa=True), ALL, None, False, None),
        (facts(ON, mfa=True), ALL, RunStatus.INCOMPLETE, False, MfaBasis.BITBUCKET_2SV),
        (facts(OFF, mfa=True), ALL, RunStatus.INCOMPLETE, True, MfaBasis.EXCEPTION),
    ],
)  # fmt: skip
def test_the_first_accepted_factor_that_holds_is_the_basis(
    member, rules, directory, excepted, basis
):
    assessed = assess(member, rules, directory=directory, excepted=excepted)
    assert assessed.in_scope and assessed.excluded_by is None
    assert assessed.mfa_basis == basis
    assert assessed.violation is (basis is None)


def test_app_user_with_2sv_on_is_still_out_of_scope():
    member = facts(ON, mfa=True, account_type="app_user")
    assessed = assess(member, ALL, directory=COMPLETE, excepted=True)
    assert not assessed.in_scope
    assert assessed.excluded_by == "scope.exclude_account_types: app_user"
    assert assessed.mfa_basis is None and not assessed.violation


@pytest.mark.parametrize(
    ("account_type", "excluded", "in_scope"),
    [
        ("app_user", (), True),  # a policy may keep app users in scope
        ("team", ("app_user", "team"), False),  # any type Bitbucket sends can be excluded
        ("user", ("app_user",), True),
        (None, ("app_user",), True),  # no type (runs recorded before it was kept): in scope
    ],
)
def test_scope_follows_the_policy_exclusions(account_type, excluded, in_scope):
    rules = IdentityRules(exclude_account_types=excluded)
    assessed = assess(facts(OFF, account_type=account_type), rules, directory=None)
    assert assessed.in_scope is in_scope
    assert assessed.violation is in_scope


def test_rules_keep_factors_in_precedence_order_whatever_the_policy_says():
    rules = IdentityRules(accepted_factors=(Factor.IDP_SSO, Factor.BITBUCKET_2SV), sso=ALL.sso)
    assert rules.accepted_factors == (Factor.BITBUCKET_2SV, Factor.IDP_SSO)
    assert rules.needs_directory and not BITBUCKET_ONLY.needs_directory
