"""The spool: attempts the evidence file could not take, kept beside it until it can.

The writer waits for the file well past the slowest documented read (`bb2sv verify` over
a year: ~8 s, 46 s before it was made faster; WRITER_WAIT_S, or BB2SV_WRITER_WAIT). If it
still cannot write (a reader holds the file longer, the file is damaged, the disk is full),
the attempt is not lost: it is written to `<evidence file>.spool/` as one file (mode 0600),
sealed with a key derived from the collection's credentials (spool_file.py), and the next
collection stores the spooled attempts that its own credentials sealed first, oldest first,
before its own runs. The others are set aside, never deleted (`set_aside`).

    seal = SpoolSeal.for_auth(settings.auth)
    result = store_or_spool("evidence.duckdb", extract, policy, flow_run_id, seal=seal)
    result.record            # the RunRecord, when stored
    result.spooled, result.reason     # the spool file and why, when not
    result.kept              # the attempt as kept, when pages it read were lost (else None)
    replay("evidence.duckdb", seal=seal)   # [RunRecord, …] of the spooled attempts now stored
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import MAX_SECONDS
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.models import WorkspaceExtract
from tasks.bitbucket.spill import SpillLost
from tasks.canonical import sha256_hex
from tasks.evidence.errors import EvidenceLocked
from tasks.evidence.keys import RunSigner
from tasks.evidence.lost_pages import lost_reason, without_lost_pages
from tasks.evidence.run_record import RunRecord
from tasks.evidence.spool_file import (
    SPOOL_FORMAT,
    Spooled,
    SpoolSeal,
    SpoolSealError,
    read_spool,
    spool_dir,
    write_spool,
    write_spool_file,
)
from tasks.evidence.store import EvidenceStore
from tasks.policy import Policy
from tasks.signals import STOP

__all__ = [
    "SPOOL_FORMAT",
    "WRITER_WAIT_S",
    "SpoolSeal",
    "Spooled",
    "StoreResult",
    "replay",
    "STALE_AFTER_S",
    "aside_note",
    "set_aside",
    "spool_dir",
    "spooled_runs",
    "still_spooled",
    "store_or_spool",
    "write_spool",
    "writer_wait",
]

log = logging.getLogger("bb2sv.evidence")

# `bb2sv verify` over a year of daily 10,000-member runs reads for ~8 s (benchmarks/README.md);
# the margin covers slower disks and longer histories.
WRITER_WAIT_S = 300.0
_SLICE_S = 1.0  # the wait is taken in slices, so a stop ends it within a second


@dataclass(frozen=True, slots=True)
class StoreResult:
    """`record` when stored, else `spooled` (the file, and the SHA-256 of its bytes) and
    `reason`; a `reason` beside a `record` says what went wrong: pages that could not be
    kept (`kept`), or a step after the store (the anchor log)."""

    record: RunRecord | None = None
    spooled: Path | None = None
    reason: str | None = None
    spooled_sha256: str | None = None
    # The attempt as it was stored or spooled when pages it read could not be read back as
    # they arrived (lost_pages.py): the reads they belong to failed, without them. None: the
    # attempt as it was given.
    kept: Spooled | None = None


def writer_wait() -> float:
    """Seconds a writer waits for the evidence file: BB2SV_WRITER_WAIT, else WRITER_WAIT_S.
    ConfigError for a value that is not 0 to MAX_SECONDS (a week): the preflight reads it
    first, so a collection with a bad one stops before it reads anything."""
    raw = os.environ.get("BB2SV_WRITER_WAIT", "").strip()
    if not raw:
        return WRITER_WAIT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_SECONDS:
        raise ConfigError(
            f"BB2SV_WRITER_WAIT must be a number of seconds from 0 to {MAX_SECONDS:g}, got {raw!r}"
        )
    return seconds


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
    *,
    seal: SpoolSeal,
) -> StoreResult:
    """Record (and with `signer` sign) the attempt, with the collection's directory read if
    any, in the evidence file, or keep it in the spool, sealed with `seal`, and say why. The
    spool never holds the key: a spooled attempt is signed by the collection that stores it.
    A read whose pages can no longer be read back as they arrived is recorded (or spooled) as
    a failed read without them (`StoreResult.kept`)."""
    wait_s = writer_wait() if wait_s is None else wait_s
    spooled = Spooled(extract, policy, flow_run_id, directory)
    try:
        return StoreResult(record=_record(db_path, spooled, wait_s, signer))
    except Exception as exc:  # whatever kept it out of the file, the attempt must survive
        failure = exc
    # Pages that cannot be read back as they arrived: the attempt is on record without them.
    kept = without_lost_pages(spooled) if isinstance(failure, SpillLost) else None
    if kept is not None:
        spooled = kept
        try:
            record = _record(db_path, kept, wait_s, signer)
            return StoreResult(record=record, reason=lost_reason(kept), kept=kept)
        except Exception as exc:
            failure = exc
    try:
        path, digest = write_spool_file(db_path, spooled, seal=seal)
    except SpillLost:  # a page, read back to be written to the spool, is not as it arrived
        kept = without_lost_pages(spooled) or kept
        path, digest = write_spool_file(db_path, kept or spooled, seal=seal)
    reason = (
        f"{str(failure) or type(failure).__name__}. The attempt is kept in {path}"
        + ("" if kept is None else f" as a failed read ({lost_reason(kept)})")
        + "; the next collection stores it first."
    )
    log.error("%s: not stored: %s", extract.workspace, reason)
    return StoreResult(spooled=path, reason=reason, spooled_sha256=digest, kept=kept)


def spooled_runs(db_path: str | os.PathLike) -> list[Path]:
    """The spooled attempts waiting to be stored, oldest first."""
    folder = spool_dir(db_path)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


# What a spool file is renamed to when it is not stored, why, and what to do about it.
SET_ASIDE = {
    ".unreadable": "cannot be read",
    ".unverified": "is not sealed for this evidence file with this collection's credentials",
    ".duplicate": "is already in the evidence file",
}
_WHAT_TO_DO = {
    ".unreadable": (
        "Inspect it; rename it back to .json to retry, or move it out of the spool folder."
    ),
    ".unverified": (
        "If you know it is genuine, rename it back to .json and collect with "
        "BB2SV_SPOOL_TRUST=1; if not, move it out of the spool folder (keep it elsewhere as "
        "a record of what was tried)."
    ),
    ".duplicate": "Its run is stored: delete it.",
}


def still_spooled(db_path: str | os.PathLike, name: str, sha256: str | None) -> bool:
    """Whether the spool still holds the file spooled as `name`, with the SHA-256 it was
    written with (None: any): a regular file of its name, waiting, claimed or set aside.
    `bb2sv verify` asks, for each attempt the anchor log says was spooled and not stored."""
    folder, stem = spool_dir(db_path), Path(name).stem
    for suffix in (".json", ".storing", *SET_ASIDE):
        candidate = folder / f"{stem}{suffix}"
        try:
            if stat.S_ISREG(candidate.lstat().st_mode) and (
                sha256 is None or sha256_hex(candidate.read_bytes()) == sha256
            ):
                return True
        except OSError:
            continue
    return False


# A replay's claim (`.storing`) or a spool write (`.partial`) older than this was left by a
# process that died: the writer wait (at most a week, 300 s by default) bounds a live one.
STALE_AFTER_S = 3600.0


def set_aside(db_path: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """What in the spool folder a person must look at: files set aside (never deleted), and
    claims or spool writes left by a process that died (older than STALE_AFTER_S; a live
    one belongs to a collection running now). Anything else there is not bb2sv's."""
    folder = spool_dir(db_path)
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    try:
        entries = list(folder.iterdir())
    except OSError:
        return [folder]  # it cannot be read (another user's?): nothing in it can be stored
    found = []
    for path in entries:
        if path.suffix in SET_ASIDE:
            found.append(path)
        elif path.suffix in (".storing", ".partial"):
            try:  # ctime: a claim is a rename, which keeps the spooled file's mtime
                if now - path.lstat().st_ctime > STALE_AFTER_S:
                    found.append(path)
            except OSError:
                continue
    return sorted(found)


def aside_note(path: Path) -> str:
    """Why `path` (from `set_aside`) was not stored, and what to do about it."""
    if path.suffix in SET_ASIDE:
        return f"it {SET_ASIDE[path.suffix]}. {_WHAT_TO_DO[path.suffix]}"
    if path.suffix == ".spool":
        return (
            "the spool folder cannot be read (its owner or permissions?), so no attempt in it "
            "can be stored. Give the collection's user access to it."
        )
    if path.suffix == ".storing":
        return (
            "a replay claimed it and did not finish. If no collection is running, rename it "
            "back to .json to have it stored."
        )
    return (
        "a spool write did not finish (its process died). Inspect it: it may hold an attempt "
        "that was never stored."
    )


class DuplicateAttempt(Exception):
    """A spooled attempt whose run is already stored (the same workspace and start)."""


def replay(
    db_path: str | os.PathLike,
    wait_s: float | None = None,
    signer: RunSigner | None = None,
    *,
    seal: SpoolSeal,
    trust: bool | None = None,
    on_stored: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Store (and with `signer` sign) every spooled attempt sealed with `seal`, oldest
    first, calling `on_stored` (e.g. to anchor it) as soon as each is committed; stop at the
    first that the evidence file cannot take (it stays in the spool, with the ones after
    it). One that cannot be read, is not sealed with `seal` (unless `trust`, default
    BB2SV_SPOOL_TRUST=1), or was stored already is set aside (renamed, never deleted), so it
    does not hold back the attempts after it. Whatever is in the folder, it never raises
    for one file: a file it cannot rename is left where it is, and said so."""
    wait_s = writer_wait() if wait_s is None else wait_s
    trust = os.environ.get("BB2SV_SPOOL_TRUST", "").strip() == "1" if trust is None else trust
    if trust:
        log.warning(
            "BB2SV_SPOOL_TRUST=1: spooled attempts are stored whatever their seal, on your word "
            "that nobody else could write %s",
            spool_dir(db_path),
        )
    stored: list[RunRecord] = []
    for path in spooled_runs(db_path):
        claimed = path.with_suffix(".storing")
        if not _renamed(path, claimed, "cannot be claimed, so it is skipped"):
            continue  # atomic: two replays never store one attempt twice
        try:
            attempt = read_spool(claimed, seal=seal, trust=trust, evidence=db_path)
        except SpoolSealError as exc:
            _set_aside(claimed, path, ".unverified", exc)
            continue
        except Exception as exc:
            _set_aside(claimed, path, ".unreadable", exc)
            continue
        try:
            record = _record(db_path, attempt, wait_s, signer, refuse_duplicate=True)
        except DuplicateAttempt as exc:
            _set_aside(claimed, path, ".duplicate", exc)
            continue
        except Exception as exc:
            _renamed(claimed, path, "could not be put back; it waits as .storing")
            log.error("spooled attempt %s stays in the spool: %s", path.name, _why(exc))
            break
        stored.append(record)
        log.info("stored spooled attempt %s as run %s", path.name, record.run_id)
        if on_stored is not None:
            on_stored(record)
        try:
            claimed.unlink()
        except OSError as exc:  # stored: a copy left behind is set aside as a duplicate
            log.error("stored spooled attempt %s could not be removed (%s)", claimed, _why(exc))
    return stored


def _renamed(source: Path, target: Path, otherwise: str) -> bool:
    """Rename `source` to `target`, never over an existing entry; False (logged, unless
    `source` is gone) when it cannot be done."""
    try:
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "something by that name is in the way")
        source.rename(target)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.error("spooled attempt %s %s (%s)", source.name, otherwise, _why(exc))
        return False


def _why(exc: BaseException) -> str:
    """An exception as a reason: a bare KeyError('extract') says only 'extract'."""
    if isinstance(exc, KeyError):
        return f"no {exc} in it"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # without the path: it names the claimed copy, not the spool file
    return str(exc) or type(exc).__name__


def _set_aside(claimed: Path, path: Path, suffix: str, exc: BaseException) -> None:
    aside = path.with_suffix(suffix)
    if not _renamed(claimed, aside, f"could not be moved to {aside.name}; it waits as .storing"):
        return
    log.error(
        "spooled attempt %s %s (%s): it was moved to %s so that the attempts after it are "
        "stored. %s",
        path.name,
        SET_ASIDE[suffix],
        _why(exc),
        aside,
        _WHAT_TO_DO[suffix],
    )


def _record(
    db_path: str | os.PathLike,
    attempt: Spooled,
    wait_s: float,
    signer: RunSigner | None,
    *,
    refuse_duplicate: bool = False,
) -> RunRecord:
    with open_writer(db_path, wait_s) as store:
        if refuse_duplicate:
            # A copy of an attempt stored before (a spool file put back, or replayed twice).
            stored = store.conn.execute(
                "SELECT run_id FROM collection_runs WHERE workspace = ? AND started_at = ?",
                [attempt.extract.workspace, attempt.extract.started_at],
            ).fetchone()
            if stored is not None:
                raise DuplicateAttempt(f"run {stored[0]} has its workspace and start")
        return store.record_run(
            attempt.extract,
            policy=attempt.policy,
            directory=attempt.directory,
            prefect_flow_run_id=attempt.flow_run_id,
            tool_version=attempt.tool_version,
            signer=signer,
        )
