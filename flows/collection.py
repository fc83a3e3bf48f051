"""One collection of 2SV evidence, whichever way its steps run.

Per workspace: extract → store → report (→ events and artifacts, under Prefect). Workspaces
are read concurrently, at most `max_concurrent_workspaces` at a time; the evidence file has
one writer, the calling thread, which stores each attempt as soon as it ends. When the
organization directory is configured it is read once, beside the workspaces, and stored
with every workspace's run.

The steps are the plain functions of tasks/step_functions.py; an `Engine` runs them:

- `flows.collect.PrefectEngine`: as Prefect tasks of the `collect-bitbucket-2sv` flow run
  (a deployment, or `bb2sv collect` with a Prefect API configured);
- `flows.local.LocalEngine`: as plain calls on a thread pool, with no Prefect server
  (`bb2sv collect` with no Prefect API configured).

    collection = run_collection(CollectionOptions(workspaces=["acme"]), setup, engine)
    collection.whole, collection.outcomes[0].status

Unattended operation: a workspace worth reading again is read again (flows/attempts.py),
each attempt stored as its own run first; a failure of one workspace in any step is
recorded in its outcome and never costs another workspace its evidence; an attempt the
evidence file cannot take is spooled and stored first by the next collection; SIGTERM,
SIGINT, a Prefect cancellation or the time limit stop it: the attempts in flight are stored
as `failed` runs naming the signal, and nothing new starts.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.attempts import AttemptPlan
from flows.outcomes import Collection, WorkspaceOutcome
from tasks.atlassian.config import DirectorySettings
from tasks.atlassian.models import DirectoryExtract
from tasks.bitbucket.config import is_emulator_url
from tasks.bitbucket.exceptions import ConfigError
from tasks.bitbucket.models import WorkspaceExtract
from tasks.bitbucket.tls import warm_tls_context
from tasks.evidence.run_record import RunRecord
from tasks.evidence.spool import (
    SpoolSeal,
    StoreResult,
    aside_note,
    set_aside,
    spool_dir,
    spooled_runs,
)
from tasks.heap import freeze_imported_objects
from tasks.preflight import CollectionSetup, preflight
from tasks.report import ReportBundle
from tasks.signals import STOP, stop_after, stop_on_signals
from tasks.step_functions import (
    Attempt,
    Destination,
    daily_report,
    extract_attempt,
    extract_directory_once,
    record_attempt,
    replay_spool,
)
from tasks.vocabulary import ErrorKind, RunStatus
from tasks.workspaces import MAX_WORKSPACES

__all__ = ["CollectionOptions", "Engine", "run_collection", "sliding_window"]

MAX_TIME_LIMIT_S = 5 * 3600.0

# The bounds of each option, stated once: the flow's signature and CollectionOptions use them.
Workspaces = Annotated[list[str], Field(min_length=1, max_length=MAX_WORKSPACES)]
ConcurrentWorkspaces = Annotated[int, Field(ge=1, le=32)]
RetryDelay = Annotated[float, Field(ge=0, le=600)]
Attempts = Annotated[int, Field(ge=1, le=10)]
GiveUpAfter = Annotated[float, Field(gt=0, le=86_400)]
TimeLimit = Annotated[float, Field(gt=0, le=MAX_TIME_LIMIT_S)]

Item = TypeVar("Item")
Handle = TypeVar("Handle")


class CollectionOptions(BaseModel):
    """What to collect and how; the flow's parameters (see `collect_bitbucket_2sv`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspaces: Workspaces
    db_path: str = "evidence.duckdb"
    reports_dir: str = "reports"
    policy_path: str | None = None
    secret_blocks: dict[str, str] | None = None
    max_concurrent_workspaces: ConcurrentWorkspaces = 4
    retry_delay_seconds: RetryDelay = 10.0
    attempts: Attempts = 3
    give_up_after_seconds: GiveUpAfter = 180.0
    time_limit_seconds: TimeLimit = 3600.0
    anchor_log: str | None = None

    def preflight(self) -> CollectionSetup:
        """Workspaces, policy, credentials, signing key, reports folder, anchor log and
        evidence file checked for these options (tasks/preflight.py)."""
        return preflight(
            self.db_path, self.reports_dir, self.policy_path, self.secret_blocks,
            self.max_concurrent_workspaces, self.anchor_log, self.workspaces,
        )  # fmt: skip

    @classmethod
    def checked(cls, names: Mapping[str, str] | None = None, **values: Any) -> CollectionOptions:
        """The options, or a ConfigError naming each value out of bounds; `names`: what the
        caller calls an option (the CLI's `--max-concurrent` for max_concurrent_workspaces)."""
        names = names or {}
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(map(str, error["loc"]))
                shown = names.get(field, field)
                problems.append(f"{shown}: {error['msg']} (got {error.get('input')!r})")
            raise ConfigError(f"Invalid collection options: {'; '.join(problems)}.") from None


class Engine(Protocol):
    """How the steps run: `submit` starts one in the background, `call` runs one here."""

    run_id: str | None  # the Prefect flow run's id, stored with each run; None ad hoc
    log: Any  # a logger (Prefect's run logger, or `bb2sv.collect`)

    def submit(self, step: Callable[..., Any], *args: Any) -> Any: ...
    def next_done(self, handles: list[Any]) -> Any: ...
    def outcome(self, handle: Any) -> object:
        """The step's return value, or the exception it raised."""
        ...

    def call(self, step: Callable[..., Any], *args: Any) -> Any: ...
    def announcements(
        self, stored: RunRecord, bundle: ReportBundle | None, db_path: str
    ) -> Sequence[tuple[str, Callable[..., Any], tuple[Any, ...]]]:
        """(name, function, args) of the steps that tell others (events, artifacts)."""
        ...

    def summary(self, collection: Collection) -> None:
        """Announce how the whole collection went."""
        ...


def run_collection(
    options: CollectionOptions, setup: CollectionSetup, engine: Engine
) -> Collection:
    """Collect every workspace of `setup` (preflight's result for `options`)."""
    warm_tls_context()  # the clients' TLS context, made while the spool and policy are read
    freeze_imported_objects()  # full collections would walk every imported object
    plan = AttemptPlan(options.attempts, options.retry_delay_seconds, options.give_up_after_seconds)
    STOP.clear()  # a new collection: an earlier one's stop in this process is history
    limit = (
        f"the collection's {options.time_limit_seconds:g} s time limit (--time-limit, or the "
        "flow's time_limit_seconds; raise it if a collection needs longer)"
    )
    with stop_on_signals(), stop_after(options.time_limit_seconds, limit):
        unanchored: list[str] = []
        if spooled_runs(options.db_path):
            replayed = engine.call(replay_spool, destination(engine, options, setup))
            engine.log.info("stored %d attempt(s) an earlier collection had spooled", len(replayed))
            unanchored = [result.reason for result in replayed if result.reason]
            for reason in unanchored:
                engine.log.error("%s", reason)
        waiting = spooled_runs(options.db_path)
        aside = set_aside(options.db_path)
        for path in aside:
            engine.log.error("%s was not stored: %s", path, aside_note(path))
        directory = directory_read(engine, setup.directory)
        outcomes, not_started = collect_all(engine, options, setup, plan, directory)
        read = directory()
    outcomes.sort(key=lambda outcome: outcome.workspace)
    for outcome in outcomes:
        engine.log.info(
            "%s: %s, %d members", outcome.workspace, outcome.status, outcome.member_count
        )
    directory_problem = None
    if read is not None and read.status != RunStatus.COMPLETE:
        directory_problem = f"{read.status}: {read.error}"
    elif lost := [o for o in outcomes if not o.directory_complete]:
        # Read whole, but not kept whole with some workspace (its pages were lost).
        directory_problem = f"{lost[0].directory_status}: {lost[0].directory_error}"
    spool_problem = spool_summary(options.db_path, waiting, aside, unanchored)
    collection = Collection(
        outcomes, STOP.reason, tuple(not_started), directory_problem, spool_problem
    )
    engine.summary(collection)
    return collection


def spool_summary(
    db_path: str, waiting: list[Path], aside: list[Path], unanchored: list[str]
) -> str | None:
    """What the spool left undone, if anything (the collection is then not whole): attempts
    still waiting (the replay stopped), files set aside, spooled runs stored but not
    anchored."""
    parts = []
    if waiting:
        parts.append(f"{len(waiting)} spooled attempt(s) still wait in {spool_dir(db_path)}")
    if aside:
        parts.append(f"{len(aside)} file(s) in {spool_dir(db_path)} were not stored")
    if unanchored:
        parts.append(f"{len(unanchored)} spooled run(s) were stored but not anchored")
    if not parts:
        return None
    return "; ".join(parts) + " (see the errors above): the evidence may be missing attempts."


def directory_read(
    engine: Engine, settings: DirectorySettings | None
) -> Callable[[], DirectoryExtract | None]:
    """Start reading the organization directory (None: not configured) beside the workspaces;
    the function returned waits for it the first time and then returns the same read."""
    if settings is None:
        return lambda: None
    handle = engine.submit(extract_directory_once, settings)
    return cache(
        lambda: finished(
            engine.outcome(handle),
            DirectoryExtract,
            lambda error, now: DirectoryExtract(
                org_id=settings.org_id,
                source=settings.source,
                started_at=now,
                finished_at=now,
                status=RunStatus.FAILED,
                error=f"reading the directory crashed: {error}",
                error_kind=ErrorKind.CRASH,
                emulated=settings.http.emulated,
            ),
        )
    )


def collect_all(
    engine: Engine,
    options: CollectionOptions,
    setup: CollectionSetup,
    plan: AttemptPlan,
    directory: Callable[[], DirectoryExtract | None] = lambda: None,
) -> tuple[list[WorkspaceOutcome], list[str]]:
    """(one outcome per finished workspace, the workspaces a stop kept from starting). Every
    attempt is stored with the collection's directory read."""
    queue: deque[Attempt] = deque(Attempt(workspace) for workspace in setup.workspaces)
    outcomes: list[WorkspaceOutcome] = []
    problems: dict[str, list[str]] = {}  # what went wrong with earlier attempts' steps
    pages_lost: set[str] = set()  # an earlier attempt stored or spooled without its pages
    finished_attempts = sliding_window(
        queue,
        options.max_concurrent_workspaces,
        start=lambda attempt: engine.submit(extract_attempt, setup.settings, attempt),
        next_done=engine.next_done,
        more=lambda: not STOP.requested,
    )
    for attempt, handle in finished_attempts:
        extract = finished_extract(engine.outcome(handle), attempt.workspace, setup)
        again = plan.next(attempt, extract, now=time.monotonic())
        extract = plan.describe(attempt, extract, again)
        noted = problems.setdefault(attempt.workspace, [])
        storing = Storing(
            engine, options.reports_dir, destination(engine, options, setup, directory())
        )
        if again is not None:
            # Stored before the next read starts: a retry never discards what the API saw.
            earlier = store(extract, attempt.number, noted, storing)
            if earlier is not None and earlier.kept is not None:
                pages_lost.add(attempt.workspace)
            queue.append(again)
            continue
        outcome = store_and_report(extract, attempt.number, noted, storing)
        if attempt.workspace in pages_lost:
            outcome = dataclasses.replace(outcome, pages_lost=True)
        outcomes.append(outcome)
    return outcomes, list(dict.fromkeys(attempt.workspace for attempt in queue))


def sliding_window(
    items: Iterable[Item],
    limit: int,
    *,
    start: Callable[[Item], Handle],
    next_done: Callable[[list[Handle]], Handle],
    more: Callable[[], bool] = lambda: True,
) -> Iterator[tuple[Item, Handle]]:
    """(item, handle) as each started item finishes, never more than `limit` started at once.

    A slot is refilled as soon as one item finishes, while the caller handles the finished
    one on its own thread (for the collection: the evidence file's one writer). `items` may
    be a deque the caller appends to (a retry); nothing more starts once `more()` is False.
    """
    pending = items if isinstance(items, deque) else deque(items)
    running: dict[Handle, Item] = {}

    def fill() -> None:
        while pending and len(running) < limit and more():
            item = pending.popleft()
            running[start(item)] = item

    fill()
    while running:
        handle = next_done(list(running))
        item = running.pop(handle)
        fill()
        yield item, handle
        fill()  # the caller may have queued a retry


def destination(
    engine: Engine,
    options: CollectionOptions,
    setup: CollectionSetup,
    directory: DirectoryExtract | None = None,
) -> Destination:
    """Where this collection's attempts are stored, with the collection's directory read."""
    return Destination(
        options.db_path,
        setup.policy,
        SpoolSeal.for_auth(setup.settings.auth),
        engine.run_id,
        directory,
        setup.signer,
        setup.anchor_log,
    )


@dataclass(frozen=True, slots=True)
class Storing:
    """How one attempt is stored, and its workspace's report written, by this collection."""

    engine: Engine
    reports_dir: str
    to: Destination

    def step(self, name: str, problems: list[str], function: Callable[..., Any], *args: Any):
        """Run one step; if it fails, say so in `problems` and go on (None): one workspace's
        report or event must never cost another workspace its evidence."""
        try:
            return function(*args)
        except Exception as exc:
            problems.append(f"{name} failed: {str(exc) or type(exc).__name__}")
            self.engine.log.error("%s failed: %s", name, exc)
            return None


def store(
    extract: WorkspaceExtract, number: int, problems: list[str], storing: Storing
) -> StoreResult | None:
    """Store (sign, anchor) one attempt; if the evidence file could not take it, or the anchor
    log could not be written, say so in `problems`."""
    result = storing.step(
        "store", problems, storing.engine.call, record_attempt, extract, storing.to
    )
    if result is not None and result.record is None:
        problems.append(f"attempt {number} not stored: {result.reason}")
    elif result is not None and result.reason:
        problems.append(f"attempt {number}: {result.reason}")
    return result


def store_and_report(
    extract: WorkspaceExtract, attempts: int, problems: list[str], storing: Storing
) -> WorkspaceOutcome:
    """Store the last attempt (whatever its status) with the collection's directory read,
    write its daily report, announce what changed. `problems` holds what already went wrong
    for the workspace.

    After a stop only the store happens: the evidence first, and the stop promptly.
    """
    engine, to, directory = storing.engine, storing.to, storing.to.directory
    result = store(extract, attempts, problems, storing)
    stored = None if result is None else result.record
    kept = None if result is None else result.kept
    if kept is not None:  # pages it read could not be kept: stored or spooled without them
        extract, directory = kept.extract, kept.directory
    if stored is None:
        return WorkspaceOutcome(
            workspace=extract.workspace,
            status=RunStatus(extract.status),
            run_id="",
            run_hash="",
            member_count=0,
            error=extract.error,
            error_kind=extract.error_kind,
            report_status=None,
            report_dir=None,
            attempts=attempts,
            problems=tuple(problems),
            spooled=None if result is None else str(result.spooled),
            directory_status=None if directory is None else RunStatus(directory.status),
            directory_error=None if directory is None else directory.error,
            directory_error_kind=None if directory is None else directory.error_kind,
            pages_lost=kept is not None,
        )
    bundle = None
    if not STOP.requested:
        bundle = storing.step(
            "daily report", problems, engine.call, daily_report, stored, to.db_path,
            storing.reports_dir,
        )  # fmt: skip
        for name, announce, args in engine.announcements(stored, bundle, to.db_path):
            storing.step(name, problems, announce, *args)
    return WorkspaceOutcome(
        workspace=stored.workspace,
        status=stored.status,
        run_id=stored.run_id,
        run_hash=stored.run_hash,
        member_count=stored.member_count,
        error=stored.error,
        error_kind=stored.error_kind,
        report_status=None if bundle is None else bundle.status,
        report_dir=None if bundle is None else str(bundle.directory),
        attempts=attempts,
        problems=tuple(problems),
        compliance_pct=None if bundle is None else bundle.compliance_pct,
        directory_status=stored.directory_status,
        directory_error=stored.directory_error,
        directory_error_kind=None if directory is None else directory.error_kind,
        pages_lost=kept is not None,
    )


def finished_extract(outcome: object, workspace: str, setup: CollectionSetup) -> WorkspaceExtract:
    """The extraction's result, or a failed placeholder if the extraction itself crashed.

    Whatever happened, something is stored: a gap in the evidence must be on the record.
    """
    source = setup.settings.api_url
    return finished(
        outcome,
        WorkspaceExtract,
        lambda error, now: WorkspaceExtract(
            workspace=workspace,
            source=source,
            started_at=now,
            finished_at=now,
            status=RunStatus.FAILED,
            error=f"extraction crashed: {error}",
            error_kind=ErrorKind.CRASH,
            emulated=is_emulator_url(source),
        ),
    )


Extract = TypeVar("Extract", WorkspaceExtract, DirectoryExtract)


def finished(
    outcome: object, kind: type[Extract], crashed: Callable[[str, datetime], Extract]
) -> Extract:
    """The step's extract, or `crashed(what, now)` when the step itself raised (a bug)."""
    if isinstance(outcome, kind):
        return outcome
    return crashed(f"{type(outcome).__name__}: {outcome}", datetime.now(UTC))
