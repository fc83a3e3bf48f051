"""Exit codes and the one place that turns known failures into a clear paragraph."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from tasks.vocabulary import ErrorKind

if TYPE_CHECKING:
    from flows.outcomes import WorkspaceOutcome


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected: rerun with --debug and report it
    USAGE = 2  # typer/click's own code for bad options
    CONFIG = 3  # bad or missing configuration: token, policy, workspace slug, reports dir
    AUTH = 4  # the API refused the credentials or their scopes
    INCOMPLETE = 5  # a workspace could not be read whole: no compliance claimed
    INTEGRITY = 6  # the evidence file's hash chain does not verify
    EVIDENCE = 7  # the evidence file is locked, corrupt, too new or not an evidence file
    STOPPED = 8  # SIGTERM, SIGINT or the time limit stopped it; attempts stored as failed runs


def classify(exc: BaseException) -> ExitCode:
    """Exit code for an exception raised by the library, by its type."""
    from tasks.bitbucket.exceptions import ConfigError
    from tasks.evidence.errors import EvidenceError, IntegrityError, QueryError
    from tasks.policy import PolicyError

    if isinstance(exc, QueryError):
        return ExitCode.USAGE  # the SQL given is at fault, not the evidence file
    if isinstance(exc, ConfigError | PolicyError):
        return ExitCode.CONFIG
    if isinstance(exc, IntegrityError):
        return ExitCode.INTEGRITY
    if isinstance(exc, EvidenceError):
        return ExitCode.EVIDENCE
    return ExitCode.ERROR


def exit_code_for_outcomes(
    outcomes: list[WorkspaceOutcome], stopped_by: str | None = None, spool_problem: bool = False
) -> ExitCode:
    """The collection's exit code: the most actionable problem among the workspaces and the
    organization directory (read once, but recorded with every workspace's outcome)."""
    kinds = {outcome.error_kind for outcome in outcomes if not outcome.complete}
    kinds |= {o.directory_error_kind for o in outcomes if not o.directory_complete}
    if any(outcome.pages_lost for outcome in outcomes):  # what was read is not all on record
        kinds.add(ErrorKind.CRASH)
    if stopped_by is not None or ErrorKind.STOPPED in kinds:
        return ExitCode.STOPPED
    if kinds & {ErrorKind.AUTH, ErrorKind.PERMISSION}:
        return ExitCode.AUTH
    if kinds & {ErrorKind.NOT_FOUND, ErrorKind.BAD_REQUEST}:
        return ExitCode.CONFIG
    if kinds:
        return ExitCode.INCOMPLETE
    if spool_problem or any(outcome.spooled for outcome in outcomes):
        # whole, but waiting in the spool (the file was not writable), or a spool file was
        # not stored: attempts may be missing from the evidence file
        return ExitCode.EVIDENCE
    if any(outcome.problems for outcome in outcomes):
        return ExitCode.ERROR  # stored whole, but a report, event or artifact failed
    return ExitCode.OK
