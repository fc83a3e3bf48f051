"""`RunRecord`: the one record of a stored collection run, built once and shared by the store
(it inserts `row()`), the hash chain (`expected_hash()`) and verify (`from_row`).

    record = RunRecord.sealed(run_id=…, seq=7, …, policy=policy_record, prev_run_hash=head)
    record.run_hash == record.expected_hash()        # True for a record sealed here
    store.conn.execute(insert_sql, record.row())      # the collection_runs columns

`run_hash` = SHA-256 of the UTF-8 text ``prev_run_hash + "\\n" + record_json + "\\n" +
raw_sha256 + "\\n" + observations_sha256 + "\\n" + policy_sha256``, where record_json is
`canonical()` serialised with sorted keys and no whitespace.

The identity fields (how the run read the organization directory, `identity_sha256`),
`signing_key_id` (the key that signs the run, stored in run_signatures) and
`prev_signature` (the previous run's signature, when that run was signed) are in
`canonical()` only when set: runs recorded before bb2sv had them, and runs after an unsigned
one, keep their run_hash. So a signed run's hash covers its key, its signature covers its
hash, and the next run's hash covers that signature: editing or dropping a stored signature
breaks the chain even for a verifier without the public key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import orjson

from tasks.canonical import as_utc, sha256_hex, utc_iso
from tasks.vocabulary import ErrorKind, RunStatus

__all__ = ["COLUMNS", "RunRecord"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    seq: int  # position in the hash chain, 1-based
    workspace: str
    source: str  # API base URL
    started_at: datetime  # aware UTC
    finished_at: datetime
    status: RunStatus
    member_count: int
    request_count: int
    tool_version: str
    prefect_flow_run_id: str | None
    error: str | None
    error_kind: ErrorKind | None
    emulated: bool
    policy_sha256: str
    policy: dict[str, Any]  # the canonical policy record (hashing.policy_record); not a column
    prev_run_hash: str
    raw_sha256: str
    observations_sha256: str
    run_hash: str = ""
    directory_status: RunStatus | None = None  # None: no organization directory configured
    directory_error: str | None = None
    directory_source: str | None = None  # the organization's Admin API URL
    identity_sha256: str | None = None  # None only for runs recorded before it existed
    signing_key_id: str | None = None  # key that signs this run (run_signatures); not a column
    prev_signature: str | None = None  # the previous run's signature, if any; not a column

    @classmethod
    def sealed(cls, **fields: Any) -> Self:
        """A new record whose run_hash is computed from its own fields."""
        record = cls(**fields)
        return dataclasses.replace(record, run_hash=record.expected_hash())

    @classmethod
    def from_row(
        cls,
        row: dict[str, Any],
        policy: dict[str, Any],
        signing_key_id: str | None = None,
        prev_signature: str | None = None,
    ) -> Self:
        """A stored collection_runs row (values as DuckDB returns them), for verify, with the
        run's key id and the previous run's signature as run_signatures holds them."""
        values = {name: row.get(name) for name in COLUMNS}
        kind = values["error_kind"]
        return cls(
            **{
                **values,
                "seq": int(values["seq"]),
                "started_at": as_utc(values["started_at"]),
                "finished_at": as_utc(values["finished_at"]),
                "status": _enum_or_text(RunStatus, values["status"]),
                "member_count": int(values["member_count"]),
                "request_count": int(values["request_count"]),
                "error_kind": None if kind is None else _enum_or_text(ErrorKind, kind),
                "emulated": bool(values["emulated"]),
                "directory_status": None
                if values["directory_status"] is None
                else _enum_or_text(RunStatus, values["directory_status"]),
            },
            policy=policy,
            signing_key_id=signing_key_id,
            prev_signature=prev_signature,
        )

    def canonical(self) -> dict[str, Any]:
        """What the run hash covers besides the raw, observations and policy digests: every
        other field but the hashes (identity_sha256 and the signing fields only when set)."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "workspace": self.workspace,
            "source": self.source,
            "started_at": utc_iso(self.started_at),
            "finished_at": utc_iso(self.finished_at),
            "status": str(self.status),
            "member_count": self.member_count,
            "request_count": self.request_count,
            "tool_version": self.tool_version,
            "prefect_flow_run_id": self.prefect_flow_run_id,
            "error": self.error,
            "error_kind": None if self.error_kind is None else str(self.error_kind),
            "emulated": self.emulated,
            "policy": self.policy,
            **{
                name: str(value)
                for name in ONLY_WHEN_SET
                if (value := getattr(self, name)) is not None
            },
        }

    def expected_hash(self) -> str:
        record_json = orjson.dumps(self.canonical(), option=orjson.OPT_SORT_KEYS).decode()
        return sha256_hex(
            "\n".join(
                [
                    self.prev_run_hash,
                    record_json,
                    self.raw_sha256,
                    self.observations_sha256,
                    self.policy_sha256,
                ]
            )
        )

    def row(self) -> list[Any]:
        """Values for `INSERT INTO collection_runs (COLUMNS…)`, in COLUMNS order."""
        return [getattr(self, name) for name in COLUMNS]


def _enum_or_text(enum: type, value: str) -> Any:
    # A tampered file may hold any text; verify must still hash exactly what is stored.
    try:
        return enum(value)
    except ValueError:
        return value


# policy lives in run_policies; signing_key_id and prev_signature in run_signatures.
COLUMNS = tuple(
    field.name
    for field in dataclasses.fields(RunRecord)
    if field.name not in ("policy", "signing_key_id", "prev_signature")
)
IDENTITY_FIELDS = ("directory_status", "directory_error", "directory_source", "identity_sha256")
# Hashed only when set, so runs recorded before these existed keep their run_hash.
ONLY_WHEN_SET = (*IDENTITY_FIELDS, "signing_key_id", "prev_signature")
