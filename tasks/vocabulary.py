"""The pipeline's vocabulary: every value that crosses a module boundary as a name.

They are `StrEnum`s, so they compare equal to (and are stored as) their plain text, which
is what the evidence file, reports and auditors see::

    RunStatus.COMPLETE == "complete"                 # True
    ErrorKind.AUTH.retryable                        # False: not worth retrying
    TwoStepState.UNKNOWN == "unknown"               # True
    list(Factor)                                    # second factors in precedence order
    MfaBasis.EXCEPTION == "exception"               # True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "WORKSPACE_LISTINGS",
    "ErrorKind",
    "Factor",
    "Listing",
    "MfaBasis",
    "RunStatus",
    "TwoStepState",
]


class RunStatus(StrEnum):
    """How a collection run of one workspace ended.

    `complete`: both listings read to the end with no anomaly. `incomplete`: some pages
    arrived but the population is not whole. `failed`: no members page arrived, or the
    read was stopped (what was read proves nothing whole).
    """

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    FAILED = "failed"


class ErrorKind(StrEnum):
    """Why a run is not complete, so callers decide without parsing messages."""

    AUTH = "auth"  # credentials rejected (401, OAuth token refused)
    PERMISSION = "permission"  # 403: scopes or admin rights missing
    NOT_FOUND = "not_found"  # 404: no such workspace
    BAD_REQUEST = "bad_request"  # other 4xx
    TRANSIENT = "transient"  # 5xx, timeouts, connection faults past the retry deadline
    RATE_LIMITED = "rate_limited"  # 429 or the hourly budget past the deadline
    ANOMALY = "anomaly"  # pagination cannot be trusted: loop, duplicates, size mismatch
    CRASH = "crash"  # the extraction itself raised: a bug, not an API fault
    STOPPED = "stopped"  # SIGTERM, SIGINT, a Prefect cancellation or a time limit stopped it

    @property
    def retryable(self) -> bool:
        """Worth reading again: the server or network hiccupped, or the population moved."""
        return self in (ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.ANOMALY)


class TwoStepState(StrEnum):
    """Three-valued 2SV state; the rule is `tasks.normalise.two_step_state`."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


class Listing(StrEnum):
    """The paginated listings a collection reads, as `raw_api_pages.listing` names them.

    `members` and `permissions` are a workspace's (also their Bitbucket URL path part);
    `directory` is the Atlassian organization directory (Admin API users), read once per
    collection and stored with every workspace's run.
    """

    MEMBERS = "members"
    PERMISSIONS = "permissions"
    DIRECTORY = "directory"


WORKSPACE_LISTINGS = (Listing.MEMBERS, Listing.PERMISSIONS)
"""The Bitbucket listings of one workspace, in the order they are read."""


class Factor(StrEnum):
    """A second factor a policy may accept (`accepted_factors`), in precedence order.

    `bitbucket_2sv`: Bitbucket's own two-step verification (`has_2fa_enabled`);
    `atlassian_2sv`: Atlassian-account 2SV (`mfaEnabled` in the organization directory);
    `idp_sso`: MFA at the identity provider, for active managed accounts in an attested
    SSO email domain.
    """

    BITBUCKET_2SV = "bitbucket_2sv"
    ATLASSIAN_2SV = "atlassian_2sv"
    IDP_SSO = "idp_sso"


class MfaBasis(StrEnum):
    """Why an in-scope member passes: the first accepted factor that holds, else an
    approved exception (`mfa_basis` is NULL when none holds)."""

    BITBUCKET_2SV = Factor.BITBUCKET_2SV.value
    ATLASSIAN_2SV = Factor.ATLASSIAN_2SV.value
    IDP_SSO = Factor.IDP_SSO.value
    EXCEPTION = "exception"
