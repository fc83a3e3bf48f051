"""Who is in scope and on which basis a member passes: the policy's identity rules, the
directory facts read from raw pages, and the per-member rule.

The rule itself is SQL (tasks/evidence/views/07_identity_rules.sql), because the views apply
it to every member of every run; `assess` evaluates those same macros for one member, so a
test or a reader never meets a second copy::

    rules = IdentityRules(accepted_factors=(Factor.BITBUCKET_2SV, Factor.IDP_SSO),
                          sso=SsoAttestation(("example.com",), "Okta", "MFA every session"))
    facts = MemberFacts(TwoStepState.DISABLED, account_status="active",
                        claim_status="managed", email_domain="example.com")
    assess(facts, rules, directory=RunStatus.COMPLETE)
    # Assessment(in_scope=True, excluded_by=None, mfa_basis=MfaBasis.IDP_SSO)

    directory_index(pages)    # accountId → DirectoryEntry from the run's directory pages
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import orjson

from tasks.bitbucket.models import RawPage
from tasks.vocabulary import Factor, Listing, MfaBasis, RunStatus, TwoStepState

__all__ = [
    "APP_USER",
    "DEFAULT_IDENTITY_RULES",
    "DIRECTORY_FACTORS",
    "RECORDED_BEFORE_IDENTITY",
    "Assessment",
    "IDENTITY_POLICY_COLUMNS",
    "DirectoryEntry",
    "IdentityRules",
    "MemberFacts",
    "SsoAttestation",
    "assess",
    "directory_index",
    "email_domain",
    "identity_columns",
    "identity_record",
]

APP_USER = "app_user"
DIRECTORY_FACTORS = (Factor.ATLASSIAN_2SV, Factor.IDP_SSO)  # need the organization directory
_RULES_SQL = Path(__file__).parent / "evidence" / "views" / "07_identity_rules.sql"


@dataclass(frozen=True, slots=True)
class SsoAttestation:
    """The policy's `sso:` block: which email domains sign in through which identity
    provider, and the attestation that it enforces MFA (no API can show that)."""

    email_domains: tuple[str, ...]
    identity_provider: str
    attestation: str


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """The identity part of a policy: accepted factors (kept in precedence order), the
    account types out of scope, and the SSO attestation (required with `idp_sso`)."""

    accepted_factors: tuple[Factor, ...] = (Factor.BITBUCKET_2SV,)
    exclude_account_types: tuple[str, ...] = (APP_USER,)
    sso: SsoAttestation | None = None

    def __post_init__(self) -> None:
        ordered = tuple(factor for factor in Factor if factor in self.accepted_factors)
        object.__setattr__(self, "accepted_factors", ordered)

    @property
    def needs_directory(self) -> bool:
        """True when a factor that only the organization directory can show is accepted."""
        return any(factor in self.accepted_factors for factor in DIRECTORY_FACTORS)


DEFAULT_IDENTITY_RULES = IdentityRules()
RECORDED_BEFORE_IDENTITY = IdentityRules(exclude_account_types=())
"""How a run recorded before bb2sv knew identity reads: Bitbucket 2SV only, nobody excluded."""


IDENTITY_POLICY_COLUMNS = (
    "accepted_factors",
    "exclude_account_types",
    "sso_email_domains",
    "sso_identity_provider",
    "sso_attestation",
)
"""The run_policies columns that hold a run's identity rules."""


def identity_columns(rules: IdentityRules) -> dict[str, Any]:
    """The rules as run_policies stores them (IDENTITY_POLICY_COLUMNS)."""
    sso = rules.sso
    return {
        "accepted_factors": [factor.value for factor in rules.accepted_factors],
        "exclude_account_types": list(rules.exclude_account_types),
        "sso_email_domains": None if sso is None else list(sso.email_domains),
        "sso_identity_provider": None if sso is None else sso.identity_provider,
        "sso_attestation": None if sso is None else sso.attestation,
    }


def identity_record(
    *,
    accepted_factors: Iterable[str] | None,
    exclude_account_types: Iterable[str] | None,
    sso_email_domains: Iterable[str] | None,
    sso_identity_provider: str | None,
    sso_attestation: str | None,
) -> dict[str, Any]:
    """The identity keys of a run's canonical policy record (tasks/evidence/hashing.py),
    from the run_policies columns (`identity_columns`).

    A key is there only when it differs from how runs recorded before bb2sv knew identity
    read, so those runs keep their run_hash.
    """
    record: dict[str, Any] = {}
    wanted = {str(factor) for factor in accepted_factors or ()}
    factors = [factor.value for factor in Factor if factor.value in wanted]
    if factors != [factor.value for factor in RECORDED_BEFORE_IDENTITY.accepted_factors]:
        record["accepted_factors"] = factors
    if excluded := sorted({str(kind) for kind in exclude_account_types or ()}):
        record["exclude_account_types"] = excluded
    if sso_attestation is not None:
        record["sso"] = {
            "email_domains": sorted(str(domain) for domain in sso_email_domains or ()),
            "identity_provider": sso_identity_provider,
            "attestation": sso_attestation,
        }
    return record


# ---------------------------------------------------------------------------------------------
# Directory facts: a pure function of the run's stored directory pages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """What the organization directory says about one account (Admin API user fields)."""

    account_status: str | None  # accountStatus: active | inactive | closed
    claim_status: str | None  # claimStatus: managed | unmanaged
    mfa_enabled: bool | None  # mfaEnabled: Atlassian-account 2SV; only a real boolean counts
    email_domain: str | None  # the domain of `email`, lower-case


def email_domain(email: object) -> str | None:
    """`email_domain("Ana@Example.COM")` → 'example.com'; None without a usable address."""
    if not isinstance(email, str) or "@" not in email:
        return None
    domain = email.rpartition("@")[2].strip().lower()
    return domain or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def directory_index(pages: Iterable[RawPage], memo=None) -> dict[str, DirectoryEntry] | None:
    """accountId → entry from the successful, parseable directory pages (first sighting
    wins); None when the run holds no such page (the directory was not read).

    `memo`: a `tasks.normalise.PageMemo`, so a body seen before is not parsed again."""
    index: dict[str, DirectoryEntry] | None = None
    for page in pages:
        if page.listing != Listing.DIRECTORY or page.status_code != 200:
            continue
        entries = (
            directory_entries(page)
            if memo is None
            else memo.get(page, "directory", directory_entries)
        )
        if entries is None:
            continue
        index = {} if index is None else index
        for account_id, entry in entries:
            index.setdefault(account_id, entry)
    return index


def directory_entries(page: RawPage) -> tuple[tuple[str, DirectoryEntry], ...] | None:
    """(accountId, entry) of one directory page, in order; None when it is not a usable
    page (not JSON, or no `data` list)."""
    try:
        document = orjson.loads(page.body)
    except orjson.JSONDecodeError:
        return None
    users = document.get("data") if isinstance(document, dict) else None
    if not isinstance(users, list):
        return None
    entries = []
    for user in users:
        account_id = user.get("accountId") if isinstance(user, dict) else None
        if isinstance(account_id, str) and account_id:
            mfa = user.get("mfaEnabled")
            entry = DirectoryEntry(
                account_status=_text(user.get("accountStatus")),
                claim_status=_text(user.get("claimStatus")),
                mfa_enabled=mfa if isinstance(mfa, bool) else None,
                email_domain=email_domain(user.get("email")),
            )
            entries.append((account_id, entry))
    return tuple(entries)


# ---------------------------------------------------------------------------------------------
# The per-member rule, evaluated by the views' own SQL
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """One member as a run observed it (the identity columns of member_2sv_observations)."""

    two_step_state: TwoStepState = TwoStepState.UNKNOWN
    account_type: str | None = "user"
    account_status: str | None = None  # from the directory; None when not listed there
    claim_status: str | None = None
    mfa_enabled: bool | None = None
    email_domain: str | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    in_scope: bool
    excluded_by: str | None  # the policy rule that put the member out of scope
    mfa_basis: MfaBasis | None  # None: in scope without any basis (a violation), or out of scope

    @property
    def violation(self) -> bool:
        return self.in_scope and self.mfa_basis is None


@dataclass
class _RuleEvaluator:
    conn: duckdb.DuckDBPyConnection
    lock: threading.Lock = field(default_factory=threading.Lock)


@cache
def _evaluator() -> _RuleEvaluator:
    conn = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    conn.execute(_RULES_SQL.read_text("utf-8"))
    return _RuleEvaluator(conn)


_ASSESS_SQL = """
SELECT identity_in_scope($account_type, $exclude) AS in_scope,
       identity_excluded_by($account_type, $exclude) AS excluded_by,
       identity_basis(identity_in_scope($account_type, $exclude),
                      identity_factor($accepted, $state, $directory, $account_status,
                                      $claim_status, $mfa_enabled, $email_domain, $domains),
                      $excepted) AS mfa_basis
"""


def assess(
    member: MemberFacts,
    rules: IdentityRules,
    *,
    directory: RunStatus | None,
    excepted: bool = False,
) -> Assessment:
    """Scope and basis of one member under `rules`, by the evidence views' own macros.

    `directory`: how the run read the organization directory (None: not configured);
    `excepted`: an approved exception of the policy covers the member on the run's day.
    """
    params = {
        "account_type": member.account_type,
        "exclude": list(rules.exclude_account_types),
        "accepted": [factor.value for factor in rules.accepted_factors],
        "state": TwoStepState(member.two_step_state).value,
        "directory": None if directory is None else RunStatus(directory).value,
        "account_status": member.account_status,
        "claim_status": member.claim_status,
        "mfa_enabled": member.mfa_enabled,
        "email_domain": member.email_domain,
        "domains": list(rules.sso.email_domains) if rules.sso else None,
        "excepted": excepted,
    }
    evaluator = _evaluator()
    with evaluator.lock:
        in_scope, excluded_by, basis = evaluator.conn.execute(_ASSESS_SQL, params).fetchall()[0]
    return Assessment(bool(in_scope), excluded_by, None if basis is None else MfaBasis(basis))
