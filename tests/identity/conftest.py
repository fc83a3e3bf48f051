"""Builders for the identity tests: members with account types, directory users, runs that
carry the organization directory, and policies with identity rules.

    rows = [ident.person("ana", False), ident.app("deploy-bot", True)]
    users = [ident.listed(rows[0], managed=True, domain="example.com")]
    run_id = ident.record(store, rows, users, policy=ident.policy(SSO_POLICY))
    ident.record(store, rows, users, pages_read=1)     # the directory read halfway

Pages are the emulator's own payloads (emulator.offline, emulator.directory), built without
HTTP; runs are stored by the real EvidenceStore in a real DuckDB file.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from emulator.directory import directory_user, offline_directory
from emulator.offline import make_extract, member
from tasks.evidence.store import EvidenceStore
from tasks.policy import Policy, parse_policy
from tasks.vocabulary import ErrorKind

DAY = date(2026, 11, 27)
DOMAIN = "example.com"

SSO_POLICY = f"""\
accepted_factors: [bitbucket_2sv, atlassian_2sv, idp_sso]
sso:
  email_domains: [{DOMAIN}]
  identity_provider: Okta
  attestation: "Okta sign-on policy 'MFA every session', reviewed 2026-10-01, ticket SEC-204"
"""


def person(nickname: str, has_2fa: Any = False, permission: str = "member") -> dict[str, Any]:
    """A member who is a person (`user`), by nickname (account_id `557058:<nickname>`)."""
    return {**member(nickname, has_2fa, permission), "account_type": "user"}


def app(nickname: str, has_2fa: Any = True, kind: str = "forge") -> dict[str, Any]:
    """A member who is an app user (Bitbucket's `app_user`, with a `kind`)."""
    return {**member(nickname, has_2fa), "account_type": "app_user", "kind": kind}


def listed(
    row: dict[str, Any],
    *,
    managed: bool = True,
    domain: str = DOMAIN,
    status: str = "active",
    mfa: bool | None = None,
) -> dict[str, Any]:
    """The directory user of a member row."""
    return directory_user(
        row,
        email=f"{row['nickname']}@{domain}",
        managed=managed,
        account_status=status,
        mfa_enabled=mfa,
    )


def policy(text: str = "") -> Policy:
    return parse_policy(text, "policy.yaml")


def record(
    store: EvidenceStore,
    rows: list[dict[str, Any]],
    users: list[dict[str, Any]] | None = None,
    *,
    policy: Policy | None = None,
    day: date = DAY,
    workspace: str = "acme",
    pages_read: int | None = None,
    limit: int = 100,
) -> str:
    """Store one complete workspace run with the directory `users` (None: no directory);
    `pages_read` cuts the directory read short (incomplete, a transient fault)."""
    at = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    directory = None
    if users is not None:
        cut = pages_read is not None
        directory = offline_directory(
            users,
            at=at,
            limit=limit,
            pages_read=pages_read,
            error="HTTP 503 on page 2 after 5 attempts" if cut else None,
            error_kind=ErrorKind.TRANSIENT if cut else None,
        )
    extract = make_extract(workspace, rows, at=at)
    chosen = policy if policy is not None else parse_policy("", "policy.yaml")
    return store.record_run(extract, policy=chosen, directory=directory).run_id


@pytest.fixture
def store(tmp_path: Path):
    with EvidenceStore.open(tmp_path / "evidence.duckdb") as opened:
        yield opened


@pytest.fixture(scope="session")
def ident() -> SimpleNamespace:
    """The builders above (test modules cannot import conftest by name)."""
    return SimpleNamespace(
        DAY=DAY,
        DOMAIN=DOMAIN,
        SSO_POLICY=SSO_POLICY,
        person=person,
        app=app,
        listed=listed,
        policy=policy,
        record=record,
    )
