"""Creating an evidence file: a copy of the empty file this bb2sv's migrations make, with a
DuckDB identity of its own, linked into place whole (see `create`)::

    conn = create(Path("evidence.duckdb"), lock_timeout_s=30)  # None: another process made it

A process killed while it creates a file (SIGKILL, power loss) can leave its scratch copy
(`.bb2sv-new-<pid>-<hex>`) in the folder; the next creation there, or the next writer of
the file, removes it (`remove_stale_copies`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from pathlib import Path

import duckdb

from tasks.evidence.catalog import empty_evidence_file
from tasks.evidence.connection import closed_on_failure, connect
from tasks.evidence.errors import EvidenceError
from tasks.evidence.file_identity import with_new_identifier
from tasks.evidence.schema import migrate

__all__ = ["EVIDENCE_FILE_MODE", "commit_by_checkpoint", "create", "remove_stale_copies"]

EVIDENCE_FILE_MODE = 0o600  # a new evidence file is its owner's alone
SCRATCH_PREFIX = ".bb2sv-new-"
_SCRATCH_NAME = re.compile(re.escape(SCRATCH_PREFIX) + r"(?P<pid>[0-9]{1,10})-[0-9a-f]{12}")
# A copy lives for milliseconds; one this old whose process is gone was left behind.
STALE_AFTER_S = 3600.0


def create(path: Path, lock_timeout_s: float) -> duckdb.DuckDBPyConnection | None:
    """A new evidence file at `path`, open for writing; None if one appeared there meanwhile.

    The file starts as a copy of the empty evidence file this bb2sv's migrations make
    (`empty_evidence_file`) with a DuckDB identity of its own (`file_identity`), written
    whole under a name of its own and then linked into place: no process ever opens it
    half-written, and a file another process created first is never replaced. Its
    schema_version rows then say when the migrations reached this file (unless a run got
    there first). On a filesystem without hard links, or with a DuckDB whose file header is
    not as checked, the file is made by migrating an empty one instead, as DuckDB creates it.
    """
    image = with_new_identifier(empty_evidence_file())
    if image is None:  # a DuckDB whose file header is not as checked
        return _create_by_migrating(path, lock_timeout_s)
    remove_stale_copies(path.parent)
    scratch = path.with_name(f"{SCRATCH_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
    try:
        made = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, EVIDENCE_FILE_MODE)
    except OSError as exc:
        raise _not_created(path, exc) from None
    # The scratch copy stays open until the file is checked: its inode cannot be reused.
    with os.fdopen(made, "wb") as handle:
        try:
            os.fchmod(handle.fileno(), EVIDENCE_FILE_MODE)  # whatever the umask
            handle.write(image)
            handle.flush()
            os.fsync(handle.fileno())
            linked = _link(scratch, path)
        except OSError as exc:
            raise _not_created(path, exc) from None
        finally:
            scratch.unlink(missing_ok=True)
        if linked is None:
            return None
        if not linked:
            return _create_by_migrating(path, lock_timeout_s)
        copy = os.fstat(handle.fileno())
        conn = connect(path, read_only=False, lock_timeout_s=lock_timeout_s)
        with closed_on_failure(conn, path, action="create"):
            found = os.stat(path)
            if (found.st_dev, found.st_ino) != (copy.st_dev, copy.st_ino):
                conn.close()  # replaced since: open it as any existing file
                return None
            commit_by_checkpoint(conn)
            conn.execute(
                "UPDATE schema_version SET applied_at = now() "
                "WHERE NOT EXISTS (SELECT 1 FROM collection_runs)"
            )
    return conn


def _link(scratch: Path, path: Path) -> bool | None:
    """Link the scratch copy as `path`: True; None if a file is there already; False on a
    filesystem without hard links."""
    try:
        os.link(scratch, path)
    except FileExistsError:
        if path.is_symlink() and not path.exists():
            raise EvidenceError(
                f"{path} is a symbolic link to a file that does not exist. Pass the evidence "
                "file's own path with --db, or remove the link."
            ) from None
        return None
    except OSError as exc:
        if exc.errno in _NO_HARD_LINKS:
            return False
        raise
    return True


# os.link's errors on a filesystem that has no hard links (some network and FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _not_created(path: Path, exc: OSError) -> EvidenceError:
    return EvidenceError(
        f"Could not create evidence file {path}: {exc.strerror or exc}. Check that its "
        "folder exists and is writable, or pass another path with --db."
    )


def _create_by_migrating(path: Path, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    conn = connect(path, read_only=False, lock_timeout_s=lock_timeout_s)
    with closed_on_failure(conn, path, action="create"):
        os.chmod(path, EVIDENCE_FILE_MODE)  # before anything but DuckDB's header is in it
        commit_by_checkpoint(conn)
        migrate(conn)
    return conn


def commit_by_checkpoint(conn: duckdb.DuckDBPyConnection) -> None:
    """Make every commit of this writer a checkpoint that writes the new rows straight into
    the file, instead of first copying them into the write-ahead log.

    A run's commit otherwise serialises all its new page bodies (about 190 MB at 100,000
    members, in one DuckDB vector of 2,048 rows) into one buffer for the WAL: about 550 MB
    more at its peak, and the bodies written twice (WAL, then the checkpoint on close).
    DuckDB checkpoints instead of writing the WAL when a commit's estimated WAL size passes
    both thresholds below; it estimates a BLOB at 16 bytes, so they are set low. The commit
    stays atomic: the checkpoint switches the file's header last, so a crash leaves the file
    as it was before the run. With one writer there are no concurrent commits to block.
    """
    conn.execute("SET checkpoint_threshold = '1KB'")
    conn.execute("SET auto_checkpoint_skip_wal_threshold = 1")


def remove_stale_copies(folder: Path) -> list[str]:
    """Remove the scratch copies in `folder` that were left behind: named for a process
    that no longer runs here and over STALE_AFTER_S old (both, because a folder may be
    shared with another machine whose process ids mean nothing here). Best effort: a copy
    that cannot be removed stays. Returns the names removed."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        found = _SCRATCH_NAME.fullmatch(entry.name)
        try:
            if (
                found is None
                or not entry.is_file(follow_symlinks=False)
                or now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S
                or _running(int(found["pid"]))
            ):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(entry.name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or no such id to ask about: leave its copy
    return True
