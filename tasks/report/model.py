"""Report data: what a daily or period report says, before any format is chosen.

Loaders (`daily.py`, `period.py`) fill these from the evidence file; `daily_formats.py`,
`period_formats.py`, `member_csv.py` and `chart.py` turn them into Markdown, HTML, CSV, JSON
and SVG (with `render.py`'s templates and helpers). Frames are already in display order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd

COMPLIANT = "COMPLIANT"
NON_COMPLIANT = "NON-COMPLIANT"
INCOMPLETE = "INCOMPLETE"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of `collection_runs`, as an auditor needs to see it."""

    run_id: str
    workspace: str
    source: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    member_count: int | None
    request_count: int | None
    tool_version: str | None
    prefect_flow_run_id: str | None
    raw_sha256: str | None
    prev_run_hash: str | None
    run_hash: str | None
    error: str | None
    emulated: bool
    directory_status: str | None = None  # None: no organization directory configured
    directory_error: str | None = None
    directory_source: str | None = None
    signing_key_id: str | None = None  # fingerprint of the key that signed it; None: unsigned
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    sha256: str | None
    grace_days: int | None
    sla_days: int | None
    source_path: str | None
    accepted_factors: tuple[str, ...] = ("bitbucket_2sv",)
    exclude_account_types: tuple[str, ...] = ()
    sso_email_domains: tuple[str, ...] = ()
    sso_identity_provider: str | None = None
    sso_attestation: str | None = None  # set exactly when idp_sso is accepted


@dataclass(slots=True)
class Bases:
    """How the members of a run pass: in-scope members by mfa_basis, those without one
    (the violations), and the members out of scope."""

    bitbucket_2sv: int = 0
    atlassian_2sv: int = 0
    idp_sso: int = 0
    exception: int = 0
    without_basis: int = 0
    out_of_scope: int = 0
    in_directory: int = 0  # members in scope that the organization directory lists


@dataclass(slots=True)
class Counts:
    members: int  # in scope
    enabled: int
    disabled: int
    unknown: int
    excepted: int
    in_grace: int
    violations: int

    @property
    def compliance_pct(self) -> float:
        """Share of the members in scope with a basis (an accepted second factor or a valid
        exception), as `daily_compliance` defines it (100 for an empty workspace). Displays
        round it DOWN (see formatting.pct)."""
        if self.members == 0:
            return 100.0
        return (self.members - self.violations) * 100.0 / self.members


@dataclass(slots=True)
class DailyReport:
    run: RunInfo
    status: str
    policy: PolicyInfo
    counts: Counts
    previous_run: RunInfo | None
    # The run's members stay in the evidence file's DuckDB; a report carries what it shows:
    members_shown: pd.DataFrame  # the first rows of the members table (violations first)
    out_of_scope: pd.DataFrame  # every member out of scope
    members_csv: bytes  # every observed member of this run, classified (the CSV file)
    findings: pd.DataFrame  # violations open at this run: severity, owners first
    opened: pd.DataFrame
    resolved: pd.DataFrame
    exceptions: pd.DataFrame  # in force at this run
    expiring: pd.DataFrame  # in force and ending within EXPIRY_WARNING_DAYS
    raw_pages: pd.DataFrame
    bases: Bases = field(default_factory=Bases)
    # in force by date, but naming only a nickname in a run judged by account_id (0.4 on)
    unnamed_exceptions: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def day(self) -> date:
        return self.run.started_at.date()

    @property
    def source_changed(self) -> bool:
        """This run read the Bitbucket API at another base URL than the workspace's previous
        complete run (what `daily_compliance.source_changed` says of a day's run)."""
        previous = self.previous_run
        return previous is not None and previous.source != self.run.source

    @property
    def directory_source_changed(self) -> bool:
        """Both runs read the organization directory, at different Admin API URLs."""
        previous, run = self.previous_run, self.run
        return (
            previous is not None
            and None not in (previous.directory_source, run.directory_source)
            and previous.directory_source != run.directory_source
        )

    @property
    def compliance_pct(self) -> float | None:
        # An incomplete run never shows a percentage that could pass for a result.
        return None if self.status == INCOMPLETE else self.counts.compliance_pct


@dataclass(slots=True)
class PeriodReport:
    workspace: str
    start: date
    end: date
    status: str
    days_in_window: int
    days_with_evidence: int
    gaps: list[tuple[date, date]]  # inclusive ranges of days without a complete run
    trend: pd.DataFrame  # day, has_evidence, members, enabled, ..., compliance_pct
    findings: pd.DataFrame  # every finding open at some point in the window
    exceptions: pd.DataFrame  # exceptions in force on some day of the window
    runs: pd.DataFrame  # the complete runs the window's evidence comes from
    end_counts: dict[str, int] | None  # CIS-style counts from the last complete run
    last_run: RunInfo | None
    emulated: bool
    incomplete_runs: int = 0
    policy_sha256s: list[str] = field(default_factory=list)
    members: pd.DataFrame = field(default_factory=pd.DataFrame)  # how each member passed
    sources: list[dict] = field(default_factory=list)  # each source's coverage of the window
    attestations: pd.DataFrame = field(default_factory=pd.DataFrame)  # SSO relied on
    signing_keys: list[dict] = field(default_factory=list)  # fingerprint → complete runs


@dataclass(frozen=True, slots=True)
class ReportBundle:
    """What `write_daily_report` / `write_period_report` produced.

    `files` maps a format (`md`, `html`, `csv`, `json`; a period report also `svg` and
    `members.csv`) to its path; `manifest_path`
    lists every file's SHA-256. `summary_markdown` is a few lines for a Prefect artifact;
    `compliance_pct` is the daily report's figure (None for an incomplete run or a period);
    `violation_changes` the (opened, resolved) members the daily report found, read from
    the evidence once for both the report and the events that announce them.
    """

    directory: Path
    files: dict[str, Path]
    manifest_path: Path
    status: str
    summary_markdown: str
    compliance_pct: float | None = None
    violation_changes: tuple[pd.DataFrame, pd.DataFrame] | None = None
