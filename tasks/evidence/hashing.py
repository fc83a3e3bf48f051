"""The hash chain: how raw pages, observations, the policy and the run record are digested.

Definitions (also in README.md):

* page `sha256`       = SHA-256 of the body bytes as received.
* `raw_sha256`        = digests/raw_sha256.sql (page metadata + page sha256, in seq order).
* `observations_sha256` = digests/observations_sha256.sql (sorted canonical JSON lines).
* `policy_sha256`     = SHA-256 of the policy YAML text (Policy.sha256).
* `run_hash`          = SHA-256 of the UTF-8 text
  ``prev_run_hash + "\\n" + record_json + "\\n" + raw_sha256 + "\\n" + observations_sha256
  + "\\n" + policy_sha256`` where record_json is `run_record(...)` serialised with sorted
  keys and no whitespace, and prev_run_hash is the previous run's run_hash (seq - 1), or
  64 zeros for the first run.

The digests are computed by DuckDB over a relation, both on load (registered frames) and in
verify (stored rows), so the same SQL defines them::

    digests(conn, "observations", "member_2sv_observations")  # {run_id: hex}
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson

GENESIS_HASH = "0" * 64
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_DIGESTS_DIR = Path(__file__).parent / "digests"

DigestKind = Literal["raw", "observations"]


@cache
def _digest_sql(kind: DigestKind) -> str:
    name = "raw_sha256.sql" if kind == "raw" else "observations_sha256.sql"
    return (_DIGESTS_DIR / name).read_text(encoding="utf-8")


def digests(conn: duckdb.DuckDBPyConnection, kind: DigestKind, relation: str) -> dict[str, str]:
    """Digest per run_id of `relation` (a table name or a parenthesised sub-query we wrote)."""
    placeholder = "{pages}" if kind == "raw" else "{observations}"
    sql = _digest_sql(kind).replace(placeholder, relation)
    return dict(conn.execute(sql).fetchall())


def utc_iso(moment: datetime) -> str:
    """Canonical text of a timestamp: UTC, microseconds, `Z` (naive input is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def policy_record(
    *,
    grace_days: int,
    sla_days: int,
    severities: tuple[str, str, str],
    exceptions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The stored policy numbers and exceptions, so editing run_policies breaks run_hash."""
    canonical = [
        {
            "workspace": item["workspace"],
            "account_id": item["account_id"],
            "nickname": item["nickname"],
            "reason": item["reason"],
            "approved_by": item["approved_by"],
            "ticket": item["ticket"],
            "expires_on": _iso_date(item["expires_on"]),
        }
        for item in exceptions
    ]
    canonical.sort(key=lambda item: orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    return {
        "grace_days": int(grace_days),
        "sla_days": int(sla_days),
        "severity_owner": severities[0],
        "severity_member": severities[1],
        "severity_unknown": severities[2],
        "exceptions": canonical,
    }


def run_record(run: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """The canonical run record: every collection_runs field except the digests and hashes."""
    return {
        "run_id": run["run_id"],
        "seq": int(run["seq"]),
        "workspace": run["workspace"],
        "source": run["source"],
        "started_at": utc_iso(run["started_at"]),
        "finished_at": utc_iso(run["finished_at"]),
        "status": run["status"],
        "member_count": int(run["member_count"]),
        "request_count": int(run["request_count"]),
        "tool_version": run["tool_version"],
        "prefect_flow_run_id": run["prefect_flow_run_id"],
        "error": run["error"],
        "error_kind": run["error_kind"],
        "emulated": bool(run["emulated"]),
        "policy": policy,
    }


def run_hash(
    prev_run_hash: str, record: dict[str, Any], raw_sha256: str, obs_sha256: str, policy_sha: str
) -> str:
    record_json = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    text = "\n".join([prev_run_hash, record_json, raw_sha256, obs_sha256, policy_sha])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso_date(value: date | datetime | str) -> str:
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat() if isinstance(value, date) else str(value)
