"""The compliance policy: exceptions, grace period for new members, SLA to fix a violation.

The policy in force is stored with every collection run (its text and SHA-256), so reports
can be rebuilt from the evidence file alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

DEFAULT_GRACE_DAYS = 7
DEFAULT_SLA_DAYS = 14

# Severity of a non-compliant member, by what they can do and what we know.
SEVERITY_OWNER_WITHOUT_2SV = "critical"
SEVERITY_MEMBER_WITHOUT_2SV = "high"
SEVERITY_UNKNOWN = "medium"


@dataclass(frozen=True, slots=True)
class PolicyException:
    """An approved, time-boxed exception. It applies on days strictly before `expires_on`."""

    workspace: str
    reason: str
    approved_by: str
    ticket: str
    expires_on: date
    account_id: str | None = None
    nickname: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    grace_days: int = DEFAULT_GRACE_DAYS
    sla_days: int = DEFAULT_SLA_DAYS
    exceptions: tuple[PolicyException, ...] = ()
    source_text: str = ""  # the YAML exactly as read ("" for the built-in default)
    source_path: str | None = None
    sha256: str = field(default="")

    def __post_init__(self) -> None:
        if not self.sha256:
            digest = hashlib.sha256(self.source_text.encode("utf-8")).hexdigest()
            object.__setattr__(self, "sha256", digest)


DEFAULT_POLICY = Policy()
