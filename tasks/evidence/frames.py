"""Arrow tables for bulk loading, registered and INSERT … SELECTed (observations through
sql/store_observations.sql into member_identities and member_run_states; page bodies are
bound as parameters instead, `page_bodies.store_bodies`).

Built column-wise (one Python list per column over pages, never per observation row), so a
100,000-member run is a handful of Arrow buffers::

    pages = pages_table(run_id, extract.pages)
    conn.register("_pages", pages)
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tasks.bitbucket.models import RawPage
from tasks.evidence import hashing
from tasks.identity import identity_columns, identity_record
from tasks.normalise import IDENTITY_COLUMNS, OBSERVATION_COLUMNS
from tasks.policy import (
    SEVERITY_MEMBER_WITHOUT_2SV,
    SEVERITY_OWNER_WITHOUT_2SV,
    SEVERITY_UNKNOWN,
    Policy,
)

SEVERITIES = (SEVERITY_OWNER_WITHOUT_2SV, SEVERITY_MEMBER_WITHOUT_2SV, SEVERITY_UNKNOWN)
_UTC_US = pa.timestamp("us", tz="UTC")
_TEXTS = pa.list_(pa.string())
_LIST_COLUMNS = {"accepted_factors", "exclude_account_types", "sso_email_domains"}

RESPONSES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("seq", pa.int32()),
        ("listing", pa.string()),
        ("url", pa.string()),
        ("status_code", pa.int32()),
        ("fetched_at", _UTC_US),
        ("sha256", pa.string()),
    ]
)

EXCEPTIONS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("workspace", pa.string()),
        ("account_id", pa.string()),
        ("nickname", pa.string()),
        ("reason", pa.string()),
        ("approved_by", pa.string()),
        ("ticket", pa.string()),
        ("expires_on", pa.date32()),
    ]
)


def pages_table(run_id: str, pages: list[RawPage], *, first_seq: int = 1) -> pa.Table:
    """raw_api_responses rows (raw_api_pages without the body, which page_bodies stores);
    seq follows the extract: listing by listing, each in the order received (the listings are
    read at once), starting at `first_seq`. The raw digest is computed from it.
    """
    columns = {
        "run_id": [run_id] * len(pages),
        "seq": list(range(first_seq, first_seq + len(pages))),
        "listing": [page.listing for page in pages],
        "url": [page.url for page in pages],
        "status_code": [page.status_code for page in pages],
        "fetched_at": [page.fetched_at for page in pages],
        "sha256": [page.sha256 for page in pages],
    }
    return pa.table(columns, schema=RESPONSES_SCHEMA)


def observations_table(run_id: str, observations: pa.Table) -> pa.Table:
    """member_2sv_observations rows: the normalised rows (`normalise.observations_table`)
    plus run_id, typed for DuckDB."""
    table = observations.select(OBSERVATION_COLUMNS + IDENTITY_COLUMNS)
    table = table.set_column(
        table.schema.get_field_index("observed_at"),
        "observed_at",
        table["observed_at"].cast(_UTC_US),
    )
    return table.add_column(0, "run_id", pa.repeat(run_id, table.num_rows).cast(pa.string()))


def policy_tables(run_id: str, policy: Policy) -> tuple[pa.Table, pa.Table]:
    """(run_policies row, policy_exceptions rows) for one run."""
    row = pa.table(
        {
            "run_id": [run_id],
            "policy_sha256": [policy.sha256],
            "policy_text": [policy.source_text],
            "source_path": pa.array([policy.source_path], pa.string()),
            "grace_days": pa.array([policy.grace_days], pa.int32()),
            "sla_days": pa.array([policy.sla_days], pa.int32()),
            "severity_owner": [SEVERITIES[0]],
            "severity_member": [SEVERITIES[1]],
            "severity_unknown": [SEVERITIES[2]],
            **{
                name: pa.array([value], _TEXTS if name in _LIST_COLUMNS else pa.string())
                for name, value in identity_columns(policy.identity).items()
            },
        }
    )
    items = exception_rows(policy)
    exceptions = pa.Table.from_pylist(
        [{"run_id": run_id, **item} for item in items], schema=EXCEPTIONS_SCHEMA
    )
    return row, exceptions


def exception_rows(policy: Policy) -> list[dict[str, Any]]:
    return [
        {
            "workspace": item.workspace,
            "account_id": item.account_id,
            "nickname": item.nickname,
            "reason": item.reason,
            "approved_by": item.approved_by,
            "ticket": item.ticket,
            "expires_on": item.expires_on,
        }
        for item in policy.exceptions
    ]


def policy_record_of(policy: Policy) -> dict[str, Any]:
    return hashing.policy_record(
        grace_days=policy.grace_days,
        sla_days=policy.sla_days,
        severities=SEVERITIES,
        exceptions=exception_rows(policy),
        identity=identity_record(**identity_columns(policy.identity)),
    )
