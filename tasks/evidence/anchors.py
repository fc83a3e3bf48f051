"""The anchor log: one JSON line per stored run, appended outside the evidence file.

    append_anchor(Path("reports/anchors.jsonl"), record, evidence=db_path, signer=signer)
    log = read_anchor_log(Path("reports/anchors.jsonl"))    # AnchorLog(anchors, problems)
    check = check_anchors(runs, log, trusted)                # AnchorCheck(problems, notes)

A line: {"schema": "bb2sv.anchor/1", "run_id", "seq", "workspace", "started_at", "status",
"prev_run_hash", "run_hash", "evidence_file", "anchored_at"}, plus "key_id" and "signature"
(the run's signature, `signing.sign_run_hash`) when the run was signed.

An attempt the evidence file could not take is spooled (spool.py) and gets a line too:
{"schema": "bb2sv.spooled/1", "workspace", "started_at", "spool_file", "sha256",
"evidence_file", "spooled_at"}. Verify then finds its run once stored, or its file in the
spool; a spooled attempt that is neither was lost (its file deleted) and is reported.

The log is only worth something where whoever can edit the evidence file cannot rewrite
it (another host, append-only or WORM storage, another account). Then every anchored run
must still be in the file with the same seq and run_hash, which shows deletions,
truncation and rewrites that a consistent recomputation of the chain would hide. An
anchored run_hash chains back through every run before it, so runs before the first
anchored run are vouched for by it; after it, every run must be anchored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks.bitbucket.exceptions import ConfigError
from tasks.canonical import utc_iso
from tasks.evidence.errors import EvidenceError
from tasks.evidence.keys import RunSigner
from tasks.evidence.problems import RunProblem
from tasks.evidence.run_record import RunRecord
from tasks.evidence.signing import ChainRun, sign_run_hash, signature_valid

__all__ = [
    "ANCHOR_SCHEMA",
    "Anchor",
    "AnchorCheck",
    "AnchorLog",
    "AnchorWriteError",
    "anchor_line",
    "append_anchor",
    "append_spooled",
    "check_spooled",
    "check_anchor_log_writable",
    "check_anchors",
    "read_anchor_log",
]

ANCHOR_SCHEMA = "bb2sv.anchor/1"
SPOOLED_SCHEMA = "bb2sv.spooled/1"


class AnchorWriteError(EvidenceError):
    """The run is stored but its anchor line could not be appended."""


@dataclass(frozen=True, slots=True)
class Anchor:
    line: int  # 1-based line number in the log
    run_id: str
    seq: int
    run_hash: str
    key_id: str | None
    signature: str | None


@dataclass(frozen=True, slots=True)
class SpooledLine:
    line: int
    workspace: str
    started_at: str  # as utc_iso writes it
    spool_file: str  # its name in the spool folder
    sha256: str | None  # of the spool file as written (None: the line does not say)


@dataclass(frozen=True, slots=True)
class AnchorLog:
    path: Path
    anchors: list[Anchor]
    problems: list[str]  # lines that are not anchors
    spooled: list[SpooledLine] = field(default_factory=list)


@dataclass(slots=True)
class AnchorCheck:
    problems: list[RunProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def anchor_line(record: RunRecord, *, evidence: Path, signer: RunSigner | None) -> bytes:
    document = {
        "schema": ANCHOR_SCHEMA,
        "run_id": record.run_id,
        "seq": record.seq,
        "workspace": record.workspace,
        "started_at": utc_iso(record.started_at),
        "status": str(record.status),
        "prev_run_hash": record.prev_run_hash,
        "run_hash": record.run_hash,
        "evidence_file": str(evidence.resolve()),
        "anchored_at": utc_iso(datetime.now(UTC)),
    }
    if signer is not None:
        document["key_id"] = signer.key_id
        document["signature"] = sign_run_hash(signer, record.run_hash)
    return orjson.dumps(document) + b"\n"


def append_anchor(
    log_path: Path, record: RunRecord, *, evidence: Path, signer: RunSigner | None
) -> str:
    """Append the run's line in one write (O_APPEND: concurrent writers never interleave);
    return it (without its newline), for a second witness such as a Prefect artifact."""
    line = anchor_line(record, evidence=evidence, signer=signer)
    try:
        return _append(log_path, line)
    except OSError as exc:
        raise AnchorWriteError(
            f"Run {record.run_id} is stored in {evidence} (run_hash {record.run_hash}), but "
            f"its line could not be appended to the anchor log {log_path} ({exc.strerror}). "
            "Fix the log's folder or permissions, then append this line to it by hand: "
            f"{line.decode().strip()}"
        ) from None


def append_spooled(
    log_path: Path,
    *,
    workspace: str,
    started_at: datetime,
    spool_file: Path,
    sha256: str,
    evidence: Path,
) -> str:
    """Append the line of an attempt kept in the spool (`sha256`: of the file's bytes, as
    written): if its file is lost before a collection stores it, verify says so."""
    document = {
        "schema": SPOOLED_SCHEMA,
        "workspace": workspace,
        "started_at": utc_iso(started_at),
        "spool_file": spool_file.name,
        "sha256": sha256,
        "evidence_file": str(evidence.absolute()),
        "spooled_at": utc_iso(datetime.now(UTC)),
    }
    line = orjson.dumps(document) + b"\n"
    try:
        return _append(log_path, line)
    except OSError as exc:
        raise AnchorWriteError(
            f"The attempt kept in {spool_file} could not be noted in the anchor log {log_path} "
            f"({exc.strerror}). Fix the log's folder or permissions, then append this line to "
            f"it by hand: {line.decode().strip()}"
        ) from None


def _append(log_path: Path, line: bytes) -> str:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        written = line.decode().strip()
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # after a torn line, start a fresh one
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


def check_anchor_log_writable(log_path: Path) -> None:
    """For the preflight: the log (or its folder) can be appended to; ConfigError if not."""
    target = log_path if log_path.exists() else _existing_parent(log_path)
    if log_path.exists() and not log_path.is_file():
        raise ConfigError(
            f"The anchor log {log_path} is not a regular file (a directory?); pass the path of "
            "a file (new or existing) with --anchor-log."
        )
    if not os.access(target, os.W_OK):
        raise ConfigError(
            f"The anchor log {log_path} cannot be written (no write permission on {target}). "
            "Choose another with --anchor-log or fix its permissions."
        )


def read_anchor_log(log_path: Path) -> AnchorLog:
    try:
        text = log_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"No anchor log at {log_path}. Pass the file `bb2sv collect` appends to (by "
            "default <reports-dir>/anchors.jsonl)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the anchor log {log_path} ({exc.strerror}).") from None
    anchors, problems, spooled = [], [], []
    for number, raw in enumerate(text.split(b"\n"), start=1):
        if not raw.strip():
            continue
        anchor = _parse(number, raw)
        if isinstance(anchor, Anchor):
            anchors.append(anchor)
        elif isinstance(anchor, SpooledLine):
            spooled.append(anchor)
        else:
            problems.append(
                f"anchor log line {number} is not a bb2sv anchor (a torn write, or edited)"
            )
    return AnchorLog(log_path, anchors, problems, spooled)


def check_anchors(
    runs: list[ChainRun], log: AnchorLog, trusted: dict[str, Ed25519PublicKey] | None
) -> AnchorCheck:
    """Anchored runs against the file, and runs after the first anchored one that are not."""
    check = AnchorCheck()
    by_id = {run.run_id: run for run in runs}
    anchored: set[int] = set()
    for anchor in log.anchors:
        run = by_id.get(anchor.run_id)
        mismatch = _mismatch(anchor, run)
        if mismatch is None and run is not None:
            anchored.add(run.seq)
        problem = mismatch or _bad_line_signature(anchor, trusted)
        if problem:
            seq = anchor.seq if run is None else run.seq
            check.problems.append(RunProblem(anchor.run_id, seq, problem))
    check.problems.extend(RunProblem("", None, problem) for problem in log.problems)
    if anchored:
        first = min(anchored)
        check.problems.extend(
            RunProblem(
                run.run_id,
                run.seq,
                f"not in the anchor log, though runs from seq {first} on are: added outside "
                "`bb2sv collect`, or collect stopped between storing and anchoring it (compare "
                "its run_hash with the Prefect artifact of its flow run)",
            )
            for run in runs
            if run.seq > first and run.seq not in anchored
        )
        check.notes.append(
            f"anchor log {log.path}: {len(anchored)} of {len(runs)} runs anchored; runs up "
            f"to seq {max(anchored)} match it."
        )
    elif runs:
        check.problems.append(
            RunProblem(
                runs[-1].run_id,
                runs[-1].seq,
                f"no run of the file matches the anchor log {log.path} (is it this file's "
                "log, or were all anchored runs rewritten?)",
            )
        )
    return check


def _mismatch(anchor: Anchor, run: ChainRun | None) -> str | None:
    where = f"anchor log line {anchor.line}"
    if run is None:
        return (
            f"anchored at seq {anchor.seq} ({where}, run_hash {anchor.run_hash[:16]}…) but "
            "missing from the evidence file: deleted, or the file was truncated or restored "
            "from an older copy"
        )
    if run.run_hash != anchor.run_hash:
        return (
            f"run_hash differs from the one anchored at {where}: the run, or one before it, "
            "was rewritten"
        )
    if run.seq != anchor.seq:
        return f"at seq {run.seq} in the file but anchored at seq {anchor.seq} ({where})"
    return None


def _bad_line_signature(anchor: Anchor, trusted: dict[str, Ed25519PublicKey] | None) -> str | None:
    if trusted is None or anchor.signature is None:
        return None
    key = trusted.get(anchor.key_id or "")
    if key is None:
        return f"anchor log line {anchor.line} is signed by a key that is none of --public-key"
    if not signature_valid(key, anchor.run_hash, anchor.signature):
        return f"anchor log line {anchor.line}: its signature does not match (line edited)"
    return None


def check_spooled(
    log: AnchorLog, stored: set[tuple[str, str]], in_spool: Callable[[SpooledLine], bool]
) -> list[RunProblem]:
    """Each attempt the log says was spooled: stored since (its workspace and start among
    `stored`), or still its very file in the spool (`in_spool`); otherwise it was lost."""
    return [
        RunProblem(
            "",
            None,
            f"the attempt of {line.workspace} started {line.started_at} was spooled (anchor "
            f"log line {line.line}) but is not in the evidence file, and its spool file "
            f"{line.spool_file} is gone: it was deleted before a collection could store it",
        )
        for line in log.spooled
        if (line.workspace, line.started_at) not in stored and not in_spool(line)
    ]


def _parse(number: int, raw: bytes) -> Anchor | SpooledLine | None:
    try:
        item = orjson.loads(raw)
        if item.get("schema") == SPOOLED_SCHEMA:
            digest = item.get("sha256")
            return SpooledLine(
                number,
                str(item["workspace"]),
                str(item["started_at"]),
                str(item["spool_file"]),
                digest if isinstance(digest, str) else None,
            )
        if item.get("schema") != ANCHOR_SCHEMA:
            return None
        return Anchor(
            line=number,
            run_id=str(item["run_id"]),
            seq=int(item["seq"]),
            run_hash=str(item["run_hash"]),
            key_id=item.get("key_id"),
            signature=item.get("signature"),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")
