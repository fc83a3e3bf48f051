"""Errors the evidence store raises. Every message says what went wrong and what to do.

DuckDB exceptions never leave `tasks.evidence`: they are turned into one of these at the
boundary (open, record_run, verify, query), so callers (the CLI, flows) can print `str(err)`
without a traceback.

Usage::

    try:
        store = EvidenceStore.open(path)
    except EvidenceLocked as err:
        print(err)          # names the process (and PID) that holds the file
"""

from __future__ import annotations


class EvidenceError(Exception):
    """Base class: anything wrong with the evidence file or a request against it."""


class QueryError(EvidenceError):
    """The query itself is at fault (it fails, or it is not one SELECT): fix the SQL. The
    evidence file is fine."""


class EvidenceLocked(EvidenceError):
    """Another process holds the file's write lock and did not release it in time."""

    def __init__(self, message: str, *, pid: int | None = None, process: str | None = None):
        super().__init__(message)
        self.pid = pid
        self.process = process

    @property
    def holder(self) -> str:
        return holder_text(self.process, self.pid)


def holder_text(process: str | None, pid: int | None) -> str:
    """Who holds a file's lock, as DuckDB named it: `python3 (PID 4711)`, else "another
    process"."""
    return f"{process} (PID {pid})" if pid is not None else "another process"


class EvidenceCorrupt(EvidenceError):
    """The file is a DuckDB database but DuckDB cannot read it (damaged or truncated)."""


class SchemaTooNew(EvidenceError):
    """The file was written by a newer bb2sv whose schema this version does not know."""

    def __init__(self, message: str, *, found: int, supported: int):
        super().__init__(message)
        self.found = found
        self.supported = supported


class NotAnEvidenceFile(EvidenceError):
    """The path is not a DuckDB file, or a DuckDB file that bb2sv did not create."""


class IntegrityError(EvidenceError):
    """Evidence that is not what bb2sv stored: verify's finding, or a file refused as it
    opens (tables dropped or changed, macros planted) or as a page is stored (a body whose
    SHA-256 is not its page's)."""
