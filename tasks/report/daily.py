"""Loading one run's daily report from the evidence file (see `model.DailyReport`).

    report = load_daily(conn, "20261127T060000Z-acme-1f3a9c2e")
    report.status, report.counts.violations, report.findings.head()
    opened, resolved = violation_changes(conn, run_id)

Everything is computed as of the run itself, so a report rebuilt after later runs were
added says the same thing (severity is the severity at this run, SLA is judged at this run).
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd

from tasks.report.controls import SEVERITY_ORDER
from tasks.report.member_csv import member_csv
from tasks.report.model import (
    COMPLIANT,
    INCOMPLETE,
    NON_COMPLIANT,
    Bases,
    Counts,
    DailyReport,
    PolicyInfo,
    RunInfo,
)
from tasks.report.output import ReportError
from tasks.report.queries import first_row, frame, frame_of, sql_text, temp_table
from tasks.report.render import MEMBER_TABLE_ROWS
from tasks.vocabulary import MfaBasis, RunStatus, TwoStepState

EXPIRY_WARNING_DAYS = 14

FINDING_COLUMNS = [
    "finding_id", "member_key", "account_id", "uuid", "nickname", "display_name", "permission",
    "two_step_state", "severity", "first_seen", "first_observed", "due_at", "in_grace",
    "days_open", "sla_breached",
]  # fmt: skip
MEMBER_TABLE_COLUMNS = ["nickname", "display_name", "account_id", "permission", "two_step_state",
                        "mfa_basis", "assessment"]  # fmt: skip
OUT_OF_SCOPE_COLUMNS = ["nickname", "display_name", "account_id", "account_type", "kind",
                        "excluded_by"]  # fmt: skip
CHANGE_COLUMNS = [
    "finding_id", "member_key", "account_id", "uuid", "nickname", "display_name", "permission",
    "two_step_state", "severity", "first_seen", "due_at", "resolution",
]  # fmt: skip


def load_run(conn: duckdb.DuckDBPyConnection, run_id: str) -> tuple[RunInfo, PolicyInfo]:
    row = first_row(conn, "run", run_id=run_id)
    if row is None:
        raise ReportError(
            f"No collection run {run_id!r} in the evidence file. List the runs with: "
            'bb2sv query "SELECT run_id, workspace, started_at, status FROM collection_runs"'
        )
    run = RunInfo(**{name: row[name] for name in RunInfo.__slots__})
    policy = PolicyInfo(
        sha256=row["policy_sha256"],
        grace_days=row["grace_days"],
        sla_days=row["sla_days"],
        source_path=row["source_path"],
        accepted_factors=tuple(row["accepted_factors"]),
        exclude_account_types=tuple(row["exclude_account_types"]),
        sso_email_domains=tuple(row["sso_email_domains"] or ()),
        sso_identity_provider=row["sso_identity_provider"],
        sso_attestation=row["sso_attestation"],
    )
    return run, policy


# The non-compliant members' columns a finding shows as of this run.
_CURRENT_COLUMNS = "member_key, severity, two_step_state, permission, nickname, display_name"


def load_daily(conn: duckdb.DuckDBPyConnection, run_id: str) -> DailyReport:
    run, policy = load_run(conn, run_id)
    previous_id = first_row(conn, "previous_complete_run", run_id=run_id)
    previous_run = load_run(conn, previous_id["run_id"])[0] if previous_id else None
    complete = run.status == RunStatus.COMPLETE
    # The population is read once into DuckDB; only what the report shows leaves it.
    with temp_table(conn, "run_members", run_id=run_id) as population:
        if complete:
            current = frame_of(conn, _non_compliant(population, _CURRENT_COLUMNS))
            findings, opened, resolved = _findings_at(conn, run, current, previous_id)
        else:
            # Findings are only ever judged on a whole population.
            findings = pd.DataFrame(columns=FINDING_COLUMNS)
            opened = pd.DataFrame(columns=CHANGE_COLUMNS)
            resolved = pd.DataFrame(columns=CHANGE_COLUMNS)
        counts, bases = _tallies(conn, population, findings)
        shown = frame_of(conn, _shown_members_sql(population))
        out_of_scope = frame_of(
            conn,
            f"SELECT {', '.join(OUT_OF_SCOPE_COLUMNS)} FROM {population} "
            "WHERE NOT in_scope ORDER BY member_key NULLS LAST",
        )
        csv = member_csv(conn, population, findings, run)
    if not complete:
        status = INCOMPLETE
    elif counts.violations:
        status = NON_COMPLIANT
    else:
        status = COMPLIANT
    exceptions = frame(conn, "run_exceptions", run_id=run_id)
    warn_before = pd.Timestamp(run.started_at.date() + timedelta(days=EXPIRY_WARNING_DAYS + 1))
    exceptions["expiring"] = pd.to_datetime(exceptions["expires_on"]) < warn_before
    return DailyReport(
        run=run,
        status=status,
        policy=policy,
        counts=counts,
        previous_run=previous_run,
        members_shown=shown,
        out_of_scope=out_of_scope,
        members_csv=csv,
        findings=findings,
        opened=opened,
        resolved=resolved,
        exceptions=exceptions,
        expiring=exceptions[exceptions["expiring"]].reset_index(drop=True),
        raw_pages=frame(conn, "raw_pages", run_id=run_id),
        bases=bases,
        unnamed_exceptions=frame(conn, "run_unnamed_exceptions", run_id=run_id),
    )


def violation_changes(
    conn: duckdb.DuckDBPyConnection, run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Violations opened and resolved by a complete run, versus the previous complete run.

    Both frames are empty for an incomplete or failed run (it proves nothing either way).
    `resolved.resolution` is `fixed`, `excepted`, `out_of_scope` or `left`.
    """
    run, _policy = load_run(conn, run_id)
    if run.status != RunStatus.COMPLETE:
        return pd.DataFrame(columns=CHANGE_COLUMNS), pd.DataFrame(columns=CHANGE_COLUMNS)
    current = frame_of(conn, _non_compliant(_run_members(), _CURRENT_COLUMNS), run_id=run_id)
    previous_id = first_row(conn, "previous_complete_run", run_id=run_id)
    _findings, opened, resolved = _findings_at(conn, run, current, previous_id)
    return opened, resolved


def _findings_at(
    conn: duckdb.DuckDBPyConnection,
    run: RunInfo,
    current: pd.DataFrame,
    previous: dict | None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`current`: the run's non-compliant members (_CURRENT_COLUMNS)."""
    # Only members without compliance now or at the previous complete run can have a finding
    # open or resolved at this run.
    keys = set(current["member_key"])
    if previous is not None:
        keys |= _non_compliant_keys(conn, previous["run_id"])
    rows = frame(
        conn,
        "run_findings",
        workspace=run.workspace,
        started_at=run.started_at,
        member_keys=sorted(keys),
    )
    at_run = pd.Timestamp(run.started_at)
    resolved = rows[rows["resolved_run_id"] == run.run_id]
    open_rows = rows[rows["resolved_run_id"] != run.run_id].copy()
    # Severity and state as this run saw them (the view's severity is the worst of the whole
    # period, which later runs could still change).
    open_rows = open_rows.drop(
        columns=["two_step_state", "permission", "nickname", "display_name"]
    ).merge(current, on="member_key", how="inner", validate="one_to_one")
    open_rows["days_open"] = ((at_run - open_rows["first_seen"]).dt.days).astype("int64")
    open_rows["sla_breached"] = at_run > open_rows["due_at"]
    grace_end = open_rows["first_observed"] + pd.to_timedelta(open_rows["grace_days"], unit="D")
    open_rows["in_grace"] = at_run < grace_end
    findings = sort_findings(open_rows)[FINDING_COLUMNS].reset_index(drop=True)
    opened = findings[findings["first_seen"] == at_run].copy()
    opened["resolution"] = None
    resolved = resolved.rename(columns={"worst_severity": "severity"})
    return (
        findings,
        opened[CHANGE_COLUMNS].reset_index(drop=True),
        sort_findings(resolved)[CHANGE_COLUMNS].reset_index(drop=True),
    )


def _non_compliant_keys(conn: duckdb.DuckDBPyConnection, run_id: str) -> set[str]:
    """Member keys a run judged non-compliant, by run_members' own rules (no frame built)."""
    sql = _non_compliant(_run_members(), "member_key")
    return {key for (key,) in conn.execute(sql, {"run_id": run_id}).fetchall()}


def _run_members() -> str:
    """A run's members (sql/run_members.sql, for $run_id), as a subquery."""
    return f"({sql_text('run_members')})"


def _non_compliant(members: str, columns: str) -> str:
    """SELECT `columns` of the non-compliant members of `members` (a table, or
    `_run_members()`), by member_key: the one spelling of "who is non-compliant"."""
    return f"SELECT {columns} FROM {members} WHERE assessment = 'non-compliant' ORDER BY member_key"


def sort_findings(rows: pd.DataFrame) -> pd.DataFrame:
    """Severity first, owners first within a severity, then oldest first, then by member."""
    if rows.empty:
        return rows
    keyed = rows.assign(
        _sev=rows["severity"].map(SEVERITY_ORDER).fillna(len(SEVERITY_ORDER)),
        _owner=(rows["permission"] != "owner").astype("int8"),
    )
    keyed = keyed.sort_values(
        ["_sev", "_owner", "first_seen", "member_key"], kind="mergesort", na_position="last"
    )
    return keyed.drop(columns=["_sev", "_owner"])


def _shown_members_sql(population: str) -> str:
    """The first MEMBER_TABLE_ROWS members in scope, those without a basis first, then by
    basis from the last resort (an exception) to Bitbucket 2SV, then by nickname: the rows
    a reader must look at come first (the CSV lists them all)."""
    ranks = " ".join(
        f"WHEN '{basis.value}' THEN {rank}"
        for rank, basis in enumerate(reversed(list(MfaBasis)), start=1)
    )
    return (
        f"SELECT {', '.join(MEMBER_TABLE_COLUMNS)} FROM {population} WHERE in_scope "
        f"ORDER BY CASE mfa_basis {ranks} ELSE 0 END, nickname NULLS LAST, "
        f"member_key NULLS LAST LIMIT {MEMBER_TABLE_ROWS}"
    )


def _tallies(
    conn: duckdb.DuckDBPyConnection, population: str, findings: pd.DataFrame
) -> tuple[Counts, Bases]:
    """Counts of the members in scope (out of scope counts nowhere) and how members pass."""
    bases = ", ".join(
        f"count(*) FILTER (WHERE mfa_basis = '{item.value}') AS {item.value}" for item in MfaBasis
    )
    sql = f"""
        SELECT count(*) FILTER (WHERE in_scope),
               count(*) FILTER (WHERE in_scope AND two_step_state = $enabled),
               count(*) FILTER (WHERE in_scope AND two_step_state = $disabled),
               count(*) FILTER (WHERE in_scope AND two_step_state = $unknown),
               count(*) FILTER (WHERE in_scope AND assessment = 'excepted'),
               count(*) FILTER (WHERE in_scope AND assessment = 'non-compliant'),
               count(*) FILTER (WHERE in_scope AND mfa_basis IS NULL),
               count(*) FILTER (WHERE NOT in_scope),
               count(*) FILTER (WHERE in_scope AND coalesce(in_directory, false)),
               {bases}
        FROM {population}
    """
    params = {
        "enabled": TwoStepState.ENABLED.value,
        "disabled": TwoStepState.DISABLED.value,
        "unknown": TwoStepState.UNKNOWN.value,
    }
    [row] = conn.execute(sql, params).fetchall()
    members, enabled, disabled, unknown, excepted, violations, *rest = row
    without_basis, out_of_scope, in_directory, *by_basis = rest
    counts = Counts(
        members=members,
        enabled=enabled,
        disabled=disabled,
        unknown=unknown,
        excepted=excepted,
        # Findings are open violations only, all of members in scope.
        in_grace=int(findings["in_grace"].fillna(False).astype(bool).sum()),
        violations=violations,
    )
    return counts, Bases(
        **{item.value: count for item, count in zip(MfaBasis, by_basis, strict=True)},
        without_basis=without_basis,
        out_of_scope=out_of_scope,
        in_directory=in_directory,
    )
