"""The spool: attempts the evidence file could not take, kept beside it until it can.

The writer waits for the file well past the slowest documented read (`bb2sv verify` over
a year: ~8 s, 46 s before it was made faster; WRITER_WAIT_S, or BB2SV_WRITER_WAIT). If it
still cannot write (a reader holds the file longer, the file is damaged, the disk is full),
the attempt is not lost: it is written to `<evidence file>.spool/` as one JSON file (pages
base64, mode 0600), and the next collection stores the spooled attempts first, oldest
first, before its own runs.

    result = store_or_spool("evidence.duckdb", extract, policy, flow_run_id, directory)
    result.record            # the RunRecord, when stored
    result.spooled, result.reason     # the spool file and why, when not
    replay("evidence.duckdb")         # [RunRecord, …] of the spooled attempts now stored
"""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.models import RawPage, WorkspaceExtract
from tasks.canonical import as_utc, utc_iso
from tasks.evidence.errors import EvidenceLocked
from tasks.evidence.keys import RunSigner
from tasks.evidence.run_record import RunRecord
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY, Policy, parse_policy
from tasks.signals import STOP
from tasks.version import __version__
from tasks.vocabulary import ErrorKind, Listing, RunStatus
from tasks.workspaces import folder_name

__all__ = [
    "SPOOL_FORMAT",
    "WRITER_WAIT_S",
    "StoreResult",
    "replay",
    "spool_dir",
    "spooled_runs",
    "store_or_spool",
    "writer_wait",
]

log = logging.getLogger("bb2sv.evidence")

SPOOL_FORMAT = "bb2sv.spooled-run/1"
# `bb2sv verify` over a year of daily 10,000-member runs reads for ~8 s (benchmarks/README.md);
# the margin covers slower disks and longer histories.
WRITER_WAIT_S = 300.0
_SLICE_S = 1.0  # the wait is taken in slices, so a stop ends it within a second


@dataclass(frozen=True, slots=True)
class StoreResult:
    """`record` when stored, else `spooled` (the file) and `reason`; a `reason` beside a
    `record` says what went wrong after the store (e.g. the anchor log)."""

    record: RunRecord | None = None
    spooled: Path | None = None
    reason: str | None = None


def spool_dir(db_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(db_path)}.spool")


def writer_wait() -> float:
    """Seconds a writer waits for the evidence file: BB2SV_WRITER_WAIT, else WRITER_WAIT_S."""
    raw = os.environ.get("BB2SV_WRITER_WAIT", "").strip()
    try:
        return max(0.0, float(raw)) if raw else WRITER_WAIT_S
    except ValueError:
        log.warning("BB2SV_WRITER_WAIT=%r is not a number; waiting %g s", raw, WRITER_WAIT_S)
        return WRITER_WAIT_S


def open_writer(db_path: str | os.PathLike, wait_s: float) -> EvidenceStore:
    """The evidence file for writing, waiting up to `wait_s` for other processes (not past a
    stop). EvidenceLocked names the holder and the whole wait."""
    started = time.monotonic()
    while True:
        left = wait_s - (time.monotonic() - started)
        try:
            return EvidenceStore.open(db_path, lock_timeout_s=max(0.0, min(_SLICE_S, left)))
        except EvidenceLocked as exc:
            if left > _SLICE_S and not STOP.requested:
                continue
            raise EvidenceLocked(
                f"Evidence file {db_path} was held by {exc.holder} for the whole {wait_s:g} s the "
                "writer waits (BB2SV_WRITER_WAIT)"
                + (f", until {STOP.reason} stopped the wait" if STOP.requested else ""),
                pid=exc.pid,
                process=exc.process,
            ) from None


def store_or_spool(
    db_path: str | os.PathLike,
    extract: WorkspaceExtract,
    policy: Policy,
    flow_run_id: str | None,
    directory: DirectoryExtract | None = None,
    signer: RunSigner | None = None,
    wait_s: float | None = None,
) -> StoreResult:
    """Record (and with `signer` sign) the attempt, with the collection's directory read if
    any, in the evidence file, or keep it in the spool and say why. The spool never holds
    the key: a spooled attempt is signed by the collection that stores it."""
    wait_s = writer_wait() if wait_s is None else wait_s
    spooled = Spooled(extract, policy, flow_run_id, directory)
    try:
        return StoreResult(record=_record(db_path, spooled, wait_s, signer))
    except Exception as exc:  # whatever kept it out of the file, the attempt must survive
        path = write_spool(db_path, spooled)
        reason = (
            f"{str(exc) or type(exc).__name__}. The attempt is kept in {path}; the next "
            "collection stores it first."
        )
        log.error("%s: not stored: %s", extract.workspace, reason)
        return StoreResult(spooled=path, reason=reason)


def spooled_runs(db_path: str | os.PathLike) -> list[Path]:
    """The spooled attempts waiting to be stored, oldest first."""
    folder = spool_dir(db_path)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def replay(
    db_path: str | os.PathLike, wait_s: float | None = None, signer: RunSigner | None = None
) -> list[RunRecord]:
    """Store (and with `signer` sign) every spooled attempt, oldest first; stop at the first
    that the evidence file cannot take (it stays in the spool, with the ones after it). One
    that cannot be read at all is set aside as `<name>.unreadable` (never deleted), so it
    does not hold back the attempts after it."""
    wait_s = writer_wait() if wait_s is None else wait_s
    stored: list[RunRecord] = []
    for path in spooled_runs(db_path):
        claimed = path.with_suffix(".storing")
        try:
            path.rename(claimed)  # atomic: two replays never store one attempt twice
        except FileNotFoundError:
            continue
        try:
            attempt = read_spool(claimed)
        except Exception as exc:
            aside = path.with_suffix(".unreadable")
            claimed.rename(aside)
            log.error(
                "spooled attempt %s cannot be read (%s): it was moved to %s so that the "
                "attempts after it are stored. Inspect it; rename it back to .json to retry.",
                path.name,
                _why(exc),
                aside,
            )
            continue
        try:
            record = _record(db_path, attempt, wait_s, signer)
        except Exception as exc:
            claimed.rename(path)
            log.error("spooled attempt %s stays in the spool: %s", path.name, _why(exc))
            break
        claimed.unlink()
        log.info("stored spooled attempt %s as run %s", path.name, record.run_id)
        stored.append(record)
    return stored


def _why(exc: BaseException) -> str:
    """An exception as a reason: a bare KeyError('extract') says only 'extract'."""
    if isinstance(exc, KeyError):
        return f"no {exc} in it"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # without the path: it names the claimed copy, not the spool file
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Spooled:
    """Everything `record_run` needs, so a spooled attempt is stored as it would have been."""

    extract: WorkspaceExtract
    policy: Policy
    flow_run_id: str | None
    directory: DirectoryExtract | None = None
    # The bb2sv that collected it: the run is stored by its rules (normalise.roles_of). A
    # spool file without one was written by 0.1, which did not record it.
    tool_version: str = __version__


def _record(
    db_path: str | os.PathLike, attempt: Spooled, wait_s: float, signer: RunSigner | None
) -> RunRecord:
    with open_writer(db_path, wait_s) as store:
        return store.record_run(
            attempt.extract,
            policy=attempt.policy,
            directory=attempt.directory,
            prefect_flow_run_id=attempt.flow_run_id,
            tool_version=attempt.tool_version,
            signer=signer,
        )


def write_spool(db_path: str | os.PathLike, attempt: Spooled) -> Path:
    extract, policy, directory = attempt.extract, attempt.policy, attempt.directory
    folder = spool_dir(db_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = as_utc(extract.started_at).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{folder_name(extract.workspace)}-{uuid.uuid4().hex[:8]}.json"
    document = {
        "format": SPOOL_FORMAT,
        "tool_version": attempt.tool_version,
        "prefect_flow_run_id": attempt.flow_run_id,
        "policy": {"text": policy.source_text, "path": policy.source_path},
        "extract": {
            "workspace": extract.workspace,
            "source": extract.source,
            **_run_fields(extract),
        },
        "directory": None
        if directory is None
        else {
            "org_id": directory.org_id,
            "source": directory.source,
            "users_read": directory.users_read,
            **_run_fields(directory),
        },
    }
    temp = path.with_suffix(".partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(document))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)  # complete or absent: replay never reads half a file
    return path


def read_spool(path: Path) -> Spooled:
    document = orjson.loads(path.read_bytes())
    if document.get("format") != SPOOL_FORMAT:
        raise ValueError(f"{path} is not a bb2sv spooled run ({document.get('format')!r})")
    raw = document["extract"]
    text, source_path = document["policy"]["text"], document["policy"]["path"]
    extract = WorkspaceExtract(workspace=raw["workspace"], source=raw["source"], **_run(raw))
    folder = document.get("directory")
    directory = None
    if folder is not None:
        directory = DirectoryExtract(
            org_id=folder["org_id"],
            source=folder["source"],
            users_read=folder["users_read"],
            **_run(folder),
        )
    policy = parse_policy(text, source_path) if text or source_path else DEFAULT_POLICY
    version = document.get("tool_version", "0.1.0")
    if not isinstance(version, str):
        raise ValueError(f"{path} names no bb2sv version ({version!r})")
    return Spooled(extract, policy, document["prefect_flow_run_id"], directory, version)


def _run_fields(extract: WorkspaceExtract | DirectoryExtract) -> dict:
    """The fields a workspace read and a directory read share, as JSON (bodies base64)."""
    return {
        "started_at": utc_iso(extract.started_at),
        "finished_at": utc_iso(extract.finished_at),
        "status": str(extract.status),
        "request_count": extract.request_count,
        "error": extract.error,
        "error_kind": None if extract.error_kind is None else str(extract.error_kind),
        "emulated": extract.emulated,
        "pages": [
            {
                "listing": str(page.listing),
                "url": page.url,
                "status_code": page.status_code,
                "fetched_at": utc_iso(page.fetched_at),
                "body": base64.b64encode(page.body).decode("ascii"),
                "sha256": page.sha256,
            }
            for page in extract.pages
        ],
    }


def _page(raw: dict) -> RawPage:
    """A spooled page, its body checked against the sha256 it was spooled with: an altered
    one makes the file unreadable (set aside), not an attempt the store refuses every time,
    which kept the attempts after it in the spool."""
    page = RawPage(  # sha256 computed from the body read back
        listing=Listing(raw["listing"]),
        url=raw["url"],
        status_code=raw["status_code"],
        fetched_at=_instant(raw["fetched_at"]),
        body=base64.b64decode(raw["body"]),
    )
    if page.sha256 != raw["sha256"]:
        raise ValueError(
            f"the body of its {page.listing} page {page.url} is not the one spooled (its "
            "SHA-256 differs): the file was altered"
        )
    return page


def _run(raw: dict) -> dict:
    """`_run_fields` read back, as keyword arguments of either extract."""
    pages = [_page(page) for page in raw["pages"]]
    return {
        "started_at": _instant(raw["started_at"]),
        "finished_at": _instant(raw["finished_at"]),
        "status": RunStatus(raw["status"]),
        "pages": pages,
        "request_count": raw["request_count"],
        "error": raw["error"],
        "error_kind": None if raw["error_kind"] is None else ErrorKind(raw["error_kind"]),
        "emulated": raw["emulated"],
    }


def _instant(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
