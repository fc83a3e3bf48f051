"""Pages that can no longer be read back as they arrived (tasks/bitbucket/spill.py): what
is kept of an attempt then. What was read cannot be kept, but that it was tried can:

    kept = without_lost_pages(attempt)   # None when every page reads back as it arrived
    kept.extract.status, kept.extract.error   # 'failed', '…; the pages read could not be kept: …'
    lost_reason(kept)                    # "workspace 'acme': the pages read could not be kept: …"
"""

from __future__ import annotations

import dataclasses

from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.models import WorkspaceExtract
from tasks.bitbucket.spill import SpillLost
from tasks.evidence.spool_file import Spooled
from tasks.vocabulary import ErrorKind, RunStatus

__all__ = ["LOST", "lost_reason", "without_lost_pages"]


LOST = "the pages read could not be kept: "


def without_lost_pages(attempt: Spooled) -> Spooled | None:
    """The attempt with each part (the workspace's read, the directory's) whose pages can no
    longer be read as they arrived made a failed read without pages, saying why; None when
    every page reads back as it arrived (a fault that did not happen again). Each page is
    read back to tell."""
    extract, directory = attempt.extract, attempt.directory
    if (lost := _lost(extract.pages)) is not None:
        extract = dataclasses.replace(extract, pages=[], derived=None, **_failed(extract, lost))
    if directory is not None and (lost := _lost(directory.pages)) is not None:
        directory = dataclasses.replace(directory, pages=[], **_failed(directory, lost))
    if extract is attempt.extract and directory is attempt.directory:
        return None
    return dataclasses.replace(attempt, extract=extract, directory=directory)


def lost_reason(attempt: Spooled) -> str:
    """What `without_lost_pages` took out of `attempt`, in a sentence."""
    parts = [
        f"{read.label}: {read.error[read.error.index(LOST) :]}"
        for read in (attempt.extract, attempt.directory)
        if read is not None and read.error and LOST in read.error
    ]
    return "; ".join(parts)


def _failed(read: WorkspaceExtract | DirectoryExtract, lost: SpillLost) -> dict:
    why = LOST + str(lost)
    return {
        "status": RunStatus.FAILED,
        "error": why if read.error is None else f"{read.error}; {why}",
        # The read's own reason, when it had one (a 401, a stop), still says most.
        "error_kind": read.error_kind or ErrorKind.CRASH,
    }


def _lost(pages: list) -> SpillLost | None:
    """Why the first page of `pages` that cannot be read back as it arrived cannot, if any."""
    try:
        for page in pages:
            if page.body_on_disk:
                page.body  # noqa: B018 - read back, and checked (SpilledBody.read)
    except SpillLost as lost:
        return lost
    return None
