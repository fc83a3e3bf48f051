"""The pipeline's vocabulary: every value that crosses a module boundary as a name.

They are `StrEnum`s, so they compare equal to (and are stored as) their plain text, which
is what the evidence file, reports and auditors see::

    RunStatus.COMPLETE == "complete"                 # True
    ErrorKind.AUTH.retryable                        # False: not worth retrying
    TwoStepState.UNKNOWN == "unknown"               # True
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorKind", "Listing", "RunStatus", "TwoStepState"]


class RunStatus(StrEnum):
    """How a collection run of one workspace ended.

    `complete`: both listings read to the end with no anomaly. `incomplete`: some pages
    arrived but the population is not whole. `failed`: nothing usable arrived.
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
    """The two paginated Bitbucket listings a collection reads (also their URL path part)."""

    MEMBERS = "members"
    PERMISSIONS = "permissions"
