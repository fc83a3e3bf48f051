"""Signatures of run hashes: made inside the store's transaction, checked by verify.

    signature = sign_run_hash(signer, record.run_hash)     # base64 text
    store_signature(conn, record, signer)                  # the run_signatures row
    stored_signatures(conn)     # {run_id: StoredSignature}: key_id and signature are hashed
    check = check_signatures(conn, runs, trusted)          # SignatureCheck(problems, notes)

What is signed is the run_hash, which chains back through every earlier run: one valid
signature vouches for its run and everything before it. So with trusted keys (`bb2sv verify
--public-key`) verify asks that, from the first run signed by a trusted key on, every run is
signed by one, and that the newest run is: runs appended or rewritten by someone without the
key are named. Without trusted keys, signatures are checked against the public key stored
beside them, which shows they are intact but not who made them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import duckdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks.evidence.keys import RunSigner, key_id_of, public_key_from_raw
from tasks.evidence.problems import RunProblem
from tasks.evidence.run_record import RunRecord

__all__ = [
    "ChainRun",
    "SignatureCheck",
    "StoredSignature",
    "check_signatures",
    "sign_run_hash",
    "signature_valid",
    "store_signature",
    "stored_signatures",
]

# Domain separation: a bb2sv signing key signs nothing that could be mistaken for this.
SIGNATURE_CONTEXT = b"bb2sv.run-signature/1\n"


@dataclass(frozen=True, slots=True)
class ChainRun:
    """A stored run as verify's later checks see it."""

    run_id: str
    seq: int
    run_hash: str


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """What the run hashes cover of a run_signatures row: the run's own hash covers key_id,
    the next run's hash covers signature."""

    key_id: str
    signature: str


@dataclass(slots=True)
class SignatureCheck:
    problems: list[RunProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sign_run_hash(signer: RunSigner, run_hash: str) -> str:
    return _b64(signer.sign(SIGNATURE_CONTEXT + run_hash.encode("ascii")))


def signature_valid(key: Ed25519PublicKey, run_hash: str, signature: str) -> bool:
    try:
        key.verify(_unb64(signature), SIGNATURE_CONTEXT + run_hash.encode("ascii"))
    except (InvalidSignature, ValueError, UnicodeEncodeError):
        return False
    return True


def store_signature(conn: duckdb.DuckDBPyConnection, record: RunRecord, signer: RunSigner) -> None:
    """Insert the run's signature (inside the caller's transaction)."""
    signature = sign_run_hash(signer, record.run_hash)
    conn.execute(
        "INSERT INTO run_signatures (run_id, key_id, public_key, signature) VALUES (?, ?, ?, ?)",
        [record.run_id, signer.key_id, _b64(signer.public_raw), signature],
    )


def stored_signatures(conn: duckdb.DuckDBPyConnection) -> dict[str, StoredSignature]:
    rows = conn.execute("SELECT run_id, key_id, signature FROM run_signatures").fetchall()
    return {run_id: StoredSignature(key_id, signature) for run_id, key_id, signature in rows}


def check_signatures(
    conn: duckdb.DuckDBPyConnection,
    runs: list[ChainRun],
    trusted: dict[str, Ed25519PublicKey] | None,
) -> SignatureCheck:
    """Every stored signature, and with `trusted` keys the unsigned tail (see above)."""
    rows = {
        run_id: (key_id, public_key, signature)
        for run_id, key_id, public_key, signature in conn.execute(
            "SELECT run_id, key_id, public_key, signature FROM run_signatures"
        ).fetchall()
    }
    check = SignatureCheck()
    known = {run.run_id for run in runs}
    for run_id in sorted(rows.keys() - known):
        check.problems.append(
            RunProblem(run_id, None, "signature stored for a run that is not in collection_runs")
        )
    trusted_runs = []
    for run in runs:
        if run.run_id not in rows:
            continue
        problem = _signature_problem(run, *rows[run.run_id], trusted)
        if problem:
            check.problems.append(RunProblem(run.run_id, run.seq, problem))
        elif trusted is not None:
            trusted_runs.append(run.seq)
    if trusted is None and not rows:
        check.notes.append("no run is signed (set BB2SV_SIGNING_KEY to sign new runs).")
    elif trusted is None:
        check.notes.append(
            f"{len(rows)} of {len(runs)} runs signed; signatures checked against the public keys "
            "stored in the file, which shows they are intact, not who made them: pass "
            "--public-key to check them against your key."
        )
    elif runs:
        check.problems.extend(_unsigned_tail(runs, trusted_runs))
        check.notes.append(
            f"{len(trusted_runs)} of {len(runs)} runs signed by a trusted key"
            + (f"; runs up to seq {max(trusted_runs)} are vouched for" if trusted_runs else "")
            + "."
        )
    return check


def _signature_problem(
    run: ChainRun,
    key_id: str,
    public_key: str,
    signature: str,
    trusted: dict[str, Ed25519PublicKey] | None,
) -> str | None:
    try:
        stored = public_key_from_raw(_unb64(public_key))
    except ValueError:
        return "the public key stored with its signature is not an Ed25519 key (edited)"
    if key_id_of(stored) != key_id:
        return "the public key stored with its signature does not match its key_id (edited)"
    if trusted is not None and key_id not in trusted:
        return (
            f"signed by key {key_id[:16]}…, which is none of the --public-key keys (re-signed "
            "by someone else, or pass that key too)"
        )
    key = stored if trusted is None else trusted[key_id]
    if not signature_valid(key, run.run_hash, signature):
        return "signature does not match the run_hash (the run or its signature was edited)"
    return None


def _unsigned_tail(runs: list[ChainRun], trusted_seqs: list[int]) -> list[RunProblem]:
    if not trusted_seqs:
        newest = runs[-1]
        return [
            RunProblem(
                newest.run_id,
                newest.seq,
                "no run in the file is signed by a --public-key key (signatures removed, or the "
                "file was never signed with it)",
            )
        ]
    first = min(trusted_seqs)
    signed = set(trusted_seqs)
    return [
        RunProblem(
            run.run_id,
            run.seq,
            f"not signed by a trusted key, though runs from seq {first} on are: stored "
            "without the key, or added or rewritten by someone who does not hold it",
        )
        for run in runs
        if run.seq > first and run.seq not in signed
    ]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError):
        raise ValueError("not base64") from None
