"""The identity parts of a report, shared by the daily and period formats: how members pass
(by basis), the accepted factors and the SSO attestation relied on, how the organization
directory was read.

    basis_rows({"bitbucket_2sv": 5, "idp_sso": 2, ..., "out_of_scope": 1})
    # [{"basis": "bitbucket_2sv", "label": "Bitbucket 2SV (has_2fa_enabled)", "members": 5}, …]
    directory_line(run)     # 'read whole' | 'not configured' | 'not read whole (…): …'
    policy_identity(policy) # accepted factors, excluded types, the SSO attestation or None
"""

from __future__ import annotations

from typing import Any

from tasks.report.controls import BASIS_LABELS
from tasks.report.model import PolicyInfo, RunInfo
from tasks.vocabulary import RunStatus

__all__ = ["basis_rows", "directory_line", "policy_identity"]


def basis_rows(counts: dict[str, int]) -> list[dict[str, Any]]:
    """One row per basis (and without basis, out of scope), in BASIS_LABELS order."""
    return [
        {"basis": str(key), "label": label, "members": int(counts.get(key, 0))}
        for key, label in BASIS_LABELS.items()
    ]


def directory_line(run: RunInfo) -> str:
    """How the run read the organization directory, in one sentence fragment."""
    if run.directory_status is None:
        return "not configured (ATLASSIAN_ORG_ID and ATLASSIAN_ADMIN_API_KEY are not set)"
    if run.directory_status == RunStatus.COMPLETE:
        return f"read whole from {run.directory_source}"
    return (
        f"NOT read whole ({run.directory_status}): {run.directory_error}. No member passes "
        "on atlassian_2sv or idp_sso in this run"
    )


def policy_identity(policy: PolicyInfo) -> dict[str, Any]:
    """The identity rules of the policy in force, for display and for JSON."""
    sso = None
    if policy.sso_attestation is not None:
        sso = {
            "identity_provider": policy.sso_identity_provider,
            "email_domains": list(policy.sso_email_domains),
            "attestation": policy.sso_attestation,
        }
    return {
        "accepted_factors": list(policy.accepted_factors),
        "exclude_account_types": list(policy.exclude_account_types),
        "sso": sso,
    }
