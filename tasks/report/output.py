"""Writing report files: dated folders, names that carry the run time, never overwriting.

Usage::

    directory = report_directory(reports_dir, day, "acme")
    paths = write_files(directory, {"daily-20261127T060000Z.md": b"..."})

A file that already exists with identical bytes is left alone (a rebuild); one with different
bytes is an error, so published evidence is never changed behind an auditor's back. Every
report file is created with mode 0640 (REPORT_FILE_MODE: owner read/write, group read), whatever
the umask: they name members and their 2SV state.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import date, datetime
from pathlib import Path

from tasks.workspaces import folder_name

REPORT_FILE_MODE = 0o640
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ReportError(RuntimeError):
    """A report could not be written (bad input, unknown run, or a conflicting existing file)."""


class ReportConflict(ReportError):
    """A report file exists with different content; published reports are never overwritten."""


def stamp(moment: datetime) -> str:
    """`2026-11-27T06:00:00Z` as it appears in file names: `20261127T060000Z`."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def report_directory(reports_dir: str | Path, day: date, workspace: str) -> Path:
    """`reports_dir/<YYYY-MM-DD>/<workspace>/`: the slug, or a `{uuid}` without its braces."""
    folder = folder_name(workspace)
    if not _SAFE_SEGMENT.match(folder):
        raise ReportError(
            f"workspace {workspace!r} cannot be used as a folder name; "
            "expected a Bitbucket slug (letters, digits, '.', '_', '-') or a {uuid}"
        )
    return Path(reports_dir) / day.isoformat() / folder


def write_files(directory: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    """Write every file or none: conflicts are checked for all names before anything is written."""
    directory.mkdir(parents=True, exist_ok=True)
    targets = {name: directory / name for name in contents}
    for name, path in targets.items():
        if path.exists() and path.read_bytes() != contents[name]:
            raise ReportConflict(
                f"{path} already exists with different content; reports are never overwritten. "
                "If the evidence changed on purpose, write to another --reports-dir or move the "
                "old file away first."
            )
    for name, path in targets.items():
        if not path.exists():
            _create_exclusive(path, contents[name])
    return targets


def _create_exclusive(path: Path, data: bytes) -> None:
    # Write a temporary file, then hard-link it into place: the link fails if another writer
    # got there first, and a crash never leaves a half-written report under the final name.
    fd, temp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), REPORT_FILE_MODE)  # mkstemp's 0600, made the one mode
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp_name, path)
        except FileExistsError:
            if path.read_bytes() != data:
                raise ReportConflict(
                    f"{path} was written concurrently with different content"
                ) from None
    finally:
        os.unlink(temp_name)
