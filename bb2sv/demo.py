"""`bb2sv demo`: the whole product on one machine, in about a minute.

Starts the emulator on loopback with three workspaces and their Atlassian organization (its
directory: managed and unmanaged accounts, Atlassian 2SV, app users among the members),
gives them a history of simulated days, runs the real collection flow for today and the real
audit-report flow for the whole window, and prints where everything is. `acme-eng` has a
policy that accepts every factor, with an SSO attestation for the organization's domain and
one approved exception; the other two accept Bitbucket and Atlassian-account 2SV. So the
reports show every basis. Each demo run writes to a new folder, so reruns never clash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

from rich.console import Console

from tasks.bitbucket.clock import SystemClock

DEMO_REQUESTS_PER_HOUR = 1_000_000
DEMO_WORKSPACES = (("acme-eng", 1), ("acme-data", 2), ("acme-ops", 3))
DEMO_APP_USER_SHARE = 0.03  # a few app users (Forge/Connect) among the members

QUERIES = (
    "select day, workspace, members, enabled, disabled, unknown, excepted, compliance_pct\n"
    "  from daily_compliance order by day desc, workspace limit 9",
    "select workspace, nickname, severity, first_seen, due_at, resolved_at, sla_breached\n"
    "  from findings where sla_breached order by first_seen",
    "select workspace, count(*) filter (where not has_complete_evidence) as days_without_evidence\n"
    "  from evidence_coverage group by workspace",
    "select workspace, coalesce(mfa_basis, case when in_scope then 'none' else 'out of scope' end)"
    "\n  as basis, count(*) as members from latest_member_state group by all order by all",
)


class SimulatedDayClock(SystemClock):
    """06:00 UTC on a simulated day, advancing with real time, so fetch times keep their order.

    Only `now` is simulated: waits and retry deadlines still use real time.
    """

    def __init__(self, day: date) -> None:
        self.start = datetime.combine(day, clock_time(6, 0), tzinfo=UTC)
        self.origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_arguments(directory: Path, days: int, members: int) -> None:
    """The demo's options, before anything is written: a ConfigError saying what to pass."""
    from tasks.bitbucket.exceptions import ConfigError
    from tasks.period import MAX_WINDOW_DAYS

    if not 1 <= days <= MAX_WINDOW_DAYS or members < 1:
        raise ConfigError(
            f"--days must be 1 to {MAX_WINDOW_DAYS} (an audit window's most) and --members at "
            "least 1."
        )
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--dir {directory} is a file; pass a directory for the demo's runs.")


def new_run_dir(directory: Path) -> Path:
    """A fresh folder per demo run, so a rerun never touches an earlier run's files."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 100):
        run_dir = directory / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"Too many demo runs in {directory} this second; try again.")


def demo_policy_yaml(workspace: str, member: dict | None, start: date, expires_on: date) -> str:
    """One approved exception for `member` (an expected member row; None: nobody), named by
    account_id, its nickname beside it for the reader."""
    who = (
        f'  - account_id: "{member["account_id"]}"\n    nickname: {member["nickname"]}\n'
        if member is not None
        else '  - account_id: "557058:nobody"\n'
    )
    return (
        "# Demo policy: one approved exception that expires half-way through the window.\n"
        "grace_days: 7\n"
        "sla_days: 14\n"
        "exceptions:\n" + who + f"    workspace: {workspace}\n"
        "    reason: Hardware key on order; uses SSH keys only until it arrives\n"
        "    approved_by: CISO (demo)\n"
        "    ticket: SEC-1234\n"
        f"    expires_on: {expires_on.isoformat()}\n"
    )


def demo_sso_policy_yaml(base: str, domain: str, reviewed: date) -> str:
    """`base` (a demo policy) accepting every factor, with an SSO attestation for `domain`."""
    return base.replace(
        "# Demo policy:", "# Demo policy for acme-eng: SSO attested for the org's domain;"
    ) + (
        "accepted_factors: [bitbucket_2sv, atlassian_2sv, idp_sso]\n"
        "sso:\n"
        f"  email_domains: [{domain}]\n"
        "  identity_provider: Okta\n"
        "  attestation: \"Okta sign-on policy 'MFA every session' applies to every user of "
        f'{domain}; reviewed {reviewed.isoformat()} by the IAM lead (demo), ticket SEC-204"\n'
    )


DEMO_DIRECTORY_POLICY = (
    "# Demo policy for acme-data and acme-ops: Bitbucket or Atlassian-account 2SV.\n"
    "grace_days: 7\n"
    "sla_days: 14\n"
    "accepted_factors: [bitbucket_2sv, atlassian_2sv]\n"
)


def run_demo(directory: Path, *, days: int = 90, members: int = 300, console: Console) -> str:
    from bb2sv.runner import flow_result
    from emulator import Scenario, WorkspaceSpec, run_emulator
    from flows.audit_report import bitbucket_2sv_audit_report
    from flows.collect import collect_bitbucket_2sv
    from tasks.atlassian.config import AdminApiKey, DirectorySettings
    from tasks.atlassian.extract import extract_directory
    from tasks.bitbucket.auth import BearerToken
    from tasks.bitbucket.config import BitbucketSettings
    from tasks.bitbucket.extract import extract_workspace
    from tasks.evidence.anchors import append_anchor
    from tasks.evidence.store import EvidenceStore
    from tasks.policy import load_policy
    from tasks.preflight import DEFAULT_ANCHOR_LOG

    check_arguments(directory, days, members)
    started = time.monotonic()
    run_dir = new_run_dir(directory)
    db_path, reports_dir = run_dir / "evidence.duckdb", run_dir / "reports"
    anchor_log = reports_dir / DEFAULT_ANCHOR_LOG  # where the flow appends too
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=days - 1)
    specs = [
        WorkspaceSpec(slug, members=members, seed=seed, app_user_share=DEMO_APP_USER_SHARE)
        for slug, seed in DEMO_WORKSPACES
    ]
    slugs = [spec.slug for spec in specs]

    with run_emulator(specs, day=first_day) as emu:
        # The exception names someone no factor covers: a person outside the organization
        # without Bitbucket 2SV, so the report shows it in use.
        listed = {user["accountId"] for user in emu.expected_directory()}
        not_enabled = [
            m
            for m in emu.expected_members(slugs[0])
            if m.get("has_2fa_enabled") is not True
            and m["account_type"] == "user"
            and m["account_id"] not in listed
        ]
        excepted = not_enabled[0] if not_enabled else None
        base = demo_policy_yaml(
            slugs[0], excepted, first_day, first_day + timedelta(days=days // 2)
        )
        policy_files = {
            "policy-sso.yaml": demo_sso_policy_yaml(base, emu.state.org.domain, first_day),
            "policy.yaml": DEMO_DIRECTORY_POLICY,
        }
        for name, text in policy_files.items():
            (run_dir / name).write_text(text, encoding="utf-8")
        # acme-eng under the SSO policy, the other workspaces under the other one
        groups = {run_dir / "policy-sso.yaml": slugs[:1], run_dir / "policy.yaml": slugs[1:]}
        policies = {slug: load_policy(path) for path, group in groups.items() for slug in group}

        # DEMO-ONLY PATH: history is backfilled by moving the emulator's clock one simulated
        # day at a time and recording one collection per day with the plain functions (the
        # same extraction and store the flow uses). Real deployments never do this: they
        # collect once a day, as the scheduled flow below does for today.
        # The emulator has no hourly limit; the default client-side budget (1,000 requests an
        # hour, Bitbucket's) would otherwise make a 90-day backfill wait for an hour.
        settings = BitbucketSettings(
            api_url=emu.base_url,
            auth=BearerToken(emu.admin_token),
            max_requests_per_hour=DEMO_REQUESTS_PER_HOUR,
        )
        directory_settings = DirectorySettings(
            org_id=emu.org_id,
            http=BitbucketSettings(
                api_url=emu.admin_api_url,
                auth=AdminApiKey(emu.admin_api_key),
                max_requests_per_hour=DEMO_REQUESTS_PER_HOUR,
            ),
        )
        with EvidenceStore.open(db_path) as store:
            for offset in range(days - 1):
                day = first_day + timedelta(days=offset)
                emu.set_day(day)
                # Two days of API trouble for one workspace: the runs are stored as
                # incomplete and show up as gaps in the audit-period report.
                outage = offset in (days // 2, days // 2 + 1)
                emu.set_scenario(
                    Scenario(next_loop=True, fault_workspace=slugs[0]) if outage else Scenario()
                )
                # The directory is read once a day and stored with every workspace's run.
                directory = extract_directory(directory_settings, clock=SimulatedDayClock(day))
                for slug in slugs:
                    extract = extract_workspace(settings, slug, clock=SimulatedDayClock(day))
                    record = store.record_run(extract, policy=policies[slug], directory=directory)
                    # Anchored like the flow's runs, so verify --anchor-log covers the history.
                    append_anchor(anchor_log, record, evidence=db_path, signer=None)
                if offset % 10 == 0:
                    console.print(f"backfilled {day} ({offset + 1}/{days - 1} days)")
        backfill_s = time.monotonic() - started

        # Today: the real Prefect flow, exactly as the daily deployment runs it.
        emu.set_day(today)
        emu.set_scenario(Scenario())
        console.print("running the collect-bitbucket-2sv flow for today…")
        credentials = {
            "BITBUCKET_API_URL": emu.base_url,
            "BITBUCKET_TOKEN": emu.admin_token,
            "BITBUCKET_MAX_REQUESTS_PER_HOUR": str(DEMO_REQUESTS_PER_HOUR),
            "ATLASSIAN_ADMIN_API_URL": emu.admin_api_url,
            "ATLASSIAN_ORG_ID": emu.org_id,
            "ATLASSIAN_ADMIN_API_KEY": emu.admin_api_key,
        }
        collected = []
        with environment(credentials):
            for policy_path, group in groups.items():  # one flow run per policy
                collected += flow_result(
                    collect_bitbucket_2sv(
                        workspaces=group,
                        db_path=str(db_path),
                        reports_dir=str(reports_dir),
                        policy_path=str(policy_path),
                        return_state=True,
                    )
                )

    console.print("running the bitbucket-2sv-audit-report flow for the whole window…")
    audited = bitbucket_2sv_audit_report(
        workspaces=slugs,
        start=first_day,
        end=today,
        db_path=str(db_path),
        reports_dir=str(reports_dir),
    )
    return demo_summary(run_dir, db_path, anchor_log, collected, audited, backfill_s, started)


def demo_summary(run_dir, db_path, anchor_log, collected, audited, backfill_s, started) -> str:
    lines = [
        "",
        f"Demo finished in {time.monotonic() - started:.1f} s "
        f"(history backfill {backfill_s:.1f} s). Everything is under {run_dir}",
        f"  evidence file : {db_path}",
    ]
    for outcome in collected:
        lines.append(
            f"  {outcome.workspace:<10} today: {outcome.status}, "
            f"{outcome.member_count} members, report {outcome.report_status} "
            f"in {outcome.report_dir}"
        )
    for result in audited:
        html = result.files.get("html", "")
        lines.append(f"  {result.workspace:<10} audit report: {html}")
    lines += [
        "",
        "Try these (after `source .venv/bin/activate`, or prefix .venv/bin/):",
        f"  bb2sv verify --db {db_path} --anchor-log {anchor_log}",
    ]
    for sql in QUERIES:
        lines.append(f'  bb2sv query --db {db_path} "{" ".join(sql.split())}"')
    return "\n".join(lines)
