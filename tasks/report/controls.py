"""Fixed report text: the controls this evidence supports, how a member turns 2SV on, what
each basis means and what the evidence does not cover.

Kept as data so every format (Markdown, HTML, JSON) says exactly the same thing.
"""

from __future__ import annotations

from tasks.vocabulary import MfaBasis

EMULATOR_NOTICE = "EMULATOR DATA — not evidence of a real workspace"

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# (framework, control id, what it asks, what this report shows)
CONTROLS: tuple[tuple[str, str, str, str], ...] = (
    (
        "SOC 2 (2017 TSC)",
        "CC6.1",
        "Logical access security: authentication of users to protected information assets",
        "Every member's 2SV state observed daily; violations tracked to resolution",
    ),
    (
        "ISO/IEC 27001:2022",
        "A.5.17",
        "Authentication information is allocated and managed",
        "Members without a second factor identified, with owners and due dates",
    ),
    (
        "ISO/IEC 27001:2022",
        "A.8.5",
        "Secure authentication technologies and procedures",
        "2SV required for source-code access; approved, time-boxed exceptions only",
    ),
    (
        "PCI DSS v4.0",
        "8.4.2",
        "MFA for all access into the cardholder data environment",
        "Applies where repositories hold CDE code or configuration: MFA state per account",
    ),
    (
        "NIST SP 800-53 Rev. 5",
        "IA-2(1)",
        "Multi-factor authentication to privileged accounts",
        "Workspace owners without 2SV are critical findings",
    ),
    (
        "NIST SP 800-53 Rev. 5",
        "IA-2(2)",
        "Multi-factor authentication to non-privileged accounts",
        "All members without 2SV are findings with an SLA",
    ),
    (
        "CIS Controls v8",
        "6.3",
        "Require MFA for externally-exposed applications",
        "Bitbucket Cloud is internet-facing: accounts with and without 2SV counted",
    ),
    (
        "CIS Controls v8",
        "6.5",
        "Require MFA for administrative access",
        "Owner (administrator) accounts without 2SV listed first",
    ),
)

CONTROL_COLUMNS = ("framework", "control", "requirement", "evidence_in_this_report")

# Our own summary of the steps (facts from Atlassian's help pages; see docs/).
GUIDANCE_TITLE = "How to turn on two-step verification in Bitbucket Cloud"
GUIDANCE_STEPS: tuple[str, ...] = (
    "Sign in to Bitbucket, select your avatar, then Personal settings, then Security, "
    "then Two-step verification.",
    "Bitbucket asks for your Atlassian account password. If you sign in with Google or another "
    "identity provider and never set one, create it first through the password reset "
    "(forgot password) link, then come back.",
    "Scan the QR code with an authenticator app on your phone; if you cannot scan it, type the "
    "account name and key shown under the code into the app instead.",
    "Type the six-digit code the app shows to confirm, and turn the setting on.",
    "Save the recovery codes somewhere safe and private, such as your password manager. "
    "Atlassian support cannot turn two-step verification off for you: without the app or a "
    "recovery code you are locked out of the account.",
    "From now on Bitbucket asks for a code from the app each time you log in. The next daily "
    "collection records the change; nothing else needs to be sent to the security team.",
)


def controls_rows() -> list[dict[str, str]]:
    return [dict(zip(CONTROL_COLUMNS, row, strict=True)) for row in CONTROLS]


# How an in-scope member passes (mfa_basis), in precedence order, then the rest.
BASIS_LABELS: dict[str, str] = {
    MfaBasis.BITBUCKET_2SV: "Bitbucket 2SV (has_2fa_enabled)",
    MfaBasis.ATLASSIAN_2SV: "Atlassian-account 2SV (organization directory)",
    MfaBasis.IDP_SSO: "Identity-provider MFA (managed account in an attested SSO domain)",
    MfaBasis.EXCEPTION: "Approved exception",
    "without_basis": "No accepted second factor (violations)",
    "out_of_scope": "Out of scope (never a violation, not in the percentage)",
}

COVERAGE_NOTE = (
    "Not covered: workspace, project and repository access tokens sign in without a person "
    "and without two-step verification, and no membership API lists them, so this report "
    "cannot account for them. Review them in each workspace's and repository's settings."
)

UNNAMED_EXCEPTIONS_NOTE = (
    "These exceptions name a nickname and no account_id. A nickname is its user's to choose, "
    "so any member could take an excepted one: since bb2sv 0.4 an exception covers only the "
    "account_id it names. Add each member's account_id (the Account ID column) to the policy."
)
