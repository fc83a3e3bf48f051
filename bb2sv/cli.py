"""`bb2sv`: collect, verify, query and report Bitbucket 2SV evidence.

Exit codes: 0 all complete; 1 unexpected error (or a report, event or artifact failed);
2 bad options; 3 bad configuration; 4 auth; 5 incomplete collection; 6 integrity failure;
7 evidence file locked (the attempt is spooled), corrupt or too new; 8 stopped by SIGTERM,
SIGINT or the time limit.
"""

from __future__ import annotations

import os
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bb2sv import __version__
from bb2sv.errors import ExitCode, classify, exit_code_for_outcomes
from bb2sv.signals import Interrupted, interrupt_on_signals
from bb2sv.terminal import FORMATS, labelled, literal, write_frame
from tasks.canonical import visible_controls
from tasks.vocabulary import ErrorKind

if TYPE_CHECKING:
    from flows.outcomes import Collection, WorkspaceOutcome

app = typer.Typer(
    help="Tamper-evident evidence that every Bitbucket Cloud member uses two-step verification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
emulator_app = typer.Typer(help="The local Bitbucket Cloud emulator.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one greppable paragraph
STATE = {"debug": False}

DbOption = Annotated[str, typer.Option("--db", help="Evidence file (DuckDB).")]
ReportsOption = Annotated[str, typer.Option("--reports-dir", help="Root of dated reports.")]
AnchorLogOption = Annotated[
    str | None,
    typer.Option(
        "--anchor-log",
        help="Anchor log: one JSON line per stored run (collect: default "
        "<reports-dir>/anchors.jsonl). Keep it where the file's editors cannot rewrite it.",
    ),
]


def _run_hash(value: str | None) -> str | None:
    from tasks.evidence.verification import HEAD_HASH

    if value is not None and not HEAD_HASH.match(value.lower()):
        raise typer.BadParameter(
            "a run_hash is 64 hex digits; take it from a report's manifest.json, the anchor "
            "log or the Prefect artifact."
        )
    return None if value is None else value.lower()


def fail(exc: BaseException) -> typer.Exit:
    """One clear paragraph on stderr (the traceback only with --debug), and the exit code."""
    code = classify(exc)
    if STATE["debug"]:
        err.print_exception()
    message = str(exc) or type(exc).__name__
    if code is ExitCode.ERROR:
        message = f"Unexpected error ({type(exc).__name__}): {message}. Rerun with --debug."
    err.print(labelled("error:", message))  # messages quote values: printed literally
    return typer.Exit(int(code))


def verdict(ok: bool, report: str, *, failure: str) -> typer.Exit:
    """Print a verification's report (stdout if it passed, stderr if not); its exit code."""
    if ok:
        out.print(literal(report, lines=True), soft_wrap=True)
        return typer.Exit(int(ExitCode.OK))
    # The report starts "FAILED: …" (as logged); the label says it once, with what failed.
    err.print(labelled(f"{failure}:", report.removeprefix("FAILED: "), lines=True))
    return typer.Exit(int(ExitCode.INTEGRITY))


def print_version(value: bool) -> None:
    # Eager, so `bb2sv --version` works without a command.
    if value:
        out.print(f"bb2sv {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version.", callback=print_version, is_eager=True),
    ] = False,
) -> None:
    STATE["debug"] = debug


def stopped(stop: Interrupted) -> typer.Exit:
    err.print(labelled(f"stopped by {stop.name}:", "before any workspace was read; nothing stored"))
    return typer.Exit(int(ExitCode.STOPPED))


# What `collect` calls the collection's options, for the messages about them.
COLLECT_OPTIONS = {
    "workspaces": "--workspace", "db_path": "--db", "reports_dir": "--reports-dir",
    "policy_path": "--policy", "max_concurrent_workspaces": "--max-concurrent",
    "retry_delay_seconds": "--retry-delay", "attempts": "--attempts",
    "give_up_after_seconds": "--give-up-after", "time_limit_seconds": "--time-limit",
    "anchor_log": "--anchor-log",
}  # fmt: skip


@app.command()
def collect(
    workspace: Annotated[
        list[str], typer.Option("--workspace", "-w", help="Slug or {uuid}; repeatable.")
    ],
    db: DbOption = "evidence.duckdb",
    reports_dir: ReportsOption = "reports",
    policy: Annotated[str | None, typer.Option("--policy", help="Policy YAML.")] = None,
    max_concurrent: Annotated[int, typer.Option(help="Workspaces read at once.")] = 4,
    retry_delay: Annotated[
        float, typer.Option(help="Seconds before reading a workspace again.")
    ] = 10.0,
    attempts: Annotated[int, typer.Option(help="Reads of one workspace at most.")] = 3,
    give_up_after: Annotated[
        float, typer.Option(help="Seconds a workspace may keep failing, attempts included.")
    ] = 180.0,
    time_limit: Annotated[
        float, typer.Option(help="Seconds after which the collection stops cleanly.")
    ] = 3600.0,
    anchor_log: AnchorLogOption = None,
) -> None:
    """Collect once. Exit 0 only if every workspace produced a complete run.

    With a Prefect API configured (PREFECT_API_URL or a Prefect profile) it runs as the
    `collect-bitbucket-2sv` flow on that server; without one, the same steps run in this
    process, starting no server (no Prefect events or artifacts then).

    Each stored run is signed when BB2SV_SIGNING_KEY (a PEM file) or BB2SV_SIGNING_KEY_BLOCK
    (a Prefect Secret block) is set, and its hash is appended to the anchor log. SIGTERM or
    SIGINT stops it within seconds: what was read is stored as failed runs naming the
    signal, and the exit code is 8.
    """
    from tasks.bitbucket.tls import warm_tls_context

    warm_tls_context()  # made in the background while the flow's modules are imported
    from bb2sv.runner import collect_as_configured
    from flows.collection import CollectionOptions

    try:
        options = CollectionOptions.checked(
            names=COLLECT_OPTIONS, workspaces=workspace, db_path=db, reports_dir=reports_dir,
            policy_path=policy,
            max_concurrent_workspaces=max_concurrent, retry_delay_seconds=retry_delay,
            attempts=attempts, give_up_after_seconds=give_up_after,
            time_limit_seconds=time_limit, anchor_log=anchor_log,
        )  # fmt: skip
        with interrupt_on_signals(), err.status(f"Collecting {len(workspace)} workspace(s)…"):
            result = collect_as_configured(options, console=err)
    except Interrupted as stop:
        raise stopped(stop) from None
    except Exception as exc:
        raise fail(exc) from None
    print_outcomes(result.outcomes)
    if result.stopped_by:
        err.print(labelled(f"stopped by {result.stopped_by}:", stop_summary(result)))
    code = exit_code_for_outcomes(result.outcomes, result.stopped_by, bool(result.spool_problem))
    raise typer.Exit(int(code))


def stop_summary(result: Collection) -> str:
    """What a stopped collection did: a stop can come after a workspace was read whole and
    stored, before its daily report was written."""
    outcomes = result.outcomes
    stored = [o for o in outcomes if o.run_id and o.complete]
    unreported = [o.run_id for o in stored if o.report_dir is None]
    groups = {
        "stored whole": [o.workspace for o in stored],
        "stopped and stored as failed runs": [
            o.workspace for o in outcomes if o.run_id and o.error_kind is ErrorKind.STOPPED
        ],
        "stored, not whole for another reason (see above)": [
            o.workspace
            for o in outcomes
            if o.run_id and not o.complete and o.error_kind is not ErrorKind.STOPPED
        ],
        "kept in the spool, stored by the next collection": [
            o.workspace for o in outcomes if o.spooled
        ],
        "not started": list(result.not_started),
    }
    parts = [f"{label}: {', '.join(names)}" for label, names in groups.items() if names]
    if unreported:
        parts.append(
            "daily report not written (write it with `bb2sv daily-report RUN_ID`): "
            + " ".join(unreported)
        )
    return "; ".join(parts or ["nothing was read"]) + ". Run the collection again."


def print_outcomes(outcomes: list[WorkspaceOutcome]) -> None:
    """The outcome table on stdout, then why each incomplete workspace (and the directory)
    was not read whole on stderr; every value literally (they quote the API)."""
    table = Table("workspace", "status", "members", "directory", "report", "run_id")
    for outcome in outcomes:
        table.add_row(
            literal(outcome.workspace),
            literal(outcome.status, "green" if outcome.complete else "red"),
            literal(outcome.member_count),
            literal(
                outcome.directory_status or "not configured",
                "" if outcome.directory_complete else "red",
            ),
            literal(outcome.report_status or ""),
            literal(outcome.run_id),
        )
    out.print(table)
    for outcome in outcomes:
        if not outcome.complete:
            err.print(labelled(f"{outcome.workspace}:", outcome.error))
        for problem in outcome.problems:  # steps after the read: store, report, events, …
            err.print(labelled(f"{outcome.workspace}:", problem))
    # The directory is read once per collection: say so once.
    directory = next((o for o in outcomes if not o.directory_complete), None)
    if directory is not None:
        err.print(labelled("organization directory:", directory.directory_error))


@app.command("audit-report")
def audit_report(
    workspace: Annotated[list[str], typer.Option("--workspace", "-w", help="Slug; repeatable.")],
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")],
    to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC).")],
    db: DbOption = "evidence.duckdb",
    reports_dir: ReportsOption = "reports",
) -> None:
    """Write the audit-period report from the evidence file alone."""
    from bb2sv.runner import audit_as_configured, parse_day
    from flows.outcomes import AuditIncomplete

    failure = None
    try:
        start, end = parse_day(from_, "--from"), parse_day(to, "--to")
        results = audit_as_configured(workspace, start, end, db, reports_dir)
    except AuditIncomplete as exc:
        results, failure = exc.outcomes, exc
    except Exception as exc:
        raise fail(exc) from None
    for result in results:
        out.print(literal(f"{result.workspace}: {result.status}"))
        for path in result.files.values():
            out.print(literal(f"  {path}"), soft_wrap=True)
    if failure is not None:
        err.print(labelled("error:", str(failure)))
        raise typer.Exit(int(ExitCode.ERROR))


@app.command("daily-report")
def daily_report(
    run_id: Annotated[str, typer.Argument(help="The stored run (collection_runs.run_id).")],
    db: DbOption = "evidence.duckdb",
    reports_dir: ReportsOption = "reports",
) -> None:
    """Write a stored run's daily report from the evidence file alone: one a stopped or
    failed collection did not write (written again, it gives the same files)."""
    from tasks.bitbucket.exceptions import ConfigError
    from tasks.evidence.store import EvidenceStore
    from tasks.heap import freeze_imported_objects
    from tasks.preflight import check_reports_dir
    from tasks.report import ReportConflict, ReportError, write_daily_report

    freeze_imported_objects()

    try:
        folder = check_reports_dir(reports_dir)
        with EvidenceStore.open(db, read_only=True) as store:
            bundle = write_daily_report(store.conn, run_id, folder)
    except ReportConflict as exc:
        raise fail(exc) from None  # a different file under the report's name: unexpected
    except ReportError as exc:
        raise fail(ConfigError(f"{exc}. Take the run_id from `bb2sv query`.")) from None
    except Exception as exc:
        raise fail(exc) from None
    out.print(literal(f"{run_id}: {bundle.status}"))
    for path in [*bundle.files.values(), bundle.manifest_path]:
        out.print(literal(f"  {path}"), soft_wrap=True)


@app.command()
def verify(
    db: DbOption = "evidence.duckdb",
    anchor_log: AnchorLogOption = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option("--public-key", help="Ed25519 public key (PEM) runs must be signed with."),
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            callback=_run_hash,
            help="A run_hash recorded earlier; the file must still contain that run (newer "
            "runs after it are counted in a note).",
        ),
    ] = None,
) -> None:
    """Recompute every hash and the chain; check the views and macros, the signatures, the
    anchor log and the expected head. Exit 6 naming the first run that does not match."""
    from tasks.evidence.verification import verify_evidence
    from tasks.heap import freeze_imported_objects

    freeze_imported_objects()
    try:
        result = verify_evidence(
            db, anchor_log=anchor_log, public_keys=public_key, expect_head=expect_head
        )
    except Exception as exc:
        raise fail(exc) from None
    raise verdict(result.ok, result.report(), failure="INTEGRITY FAILURE")


@app.command("verify-report")
def verify_report(
    manifest: Annotated[str, typer.Argument(help="A report's *.manifest.json.")],
    db: Annotated[
        str | None,
        typer.Option("--db", help="Evidence file: also rebuild the report and compare."),
    ] = None,
) -> None:
    """Check a report's files against its manifest and, with --db, against the evidence."""
    from tasks.evidence.store import EvidenceStore
    from tasks.report.verify_report import verify_report as check_report

    try:
        if db is None:
            result = check_report(Path(manifest))
        else:
            with EvidenceStore.open(db, read_only=True) as store:
                result = check_report(Path(manifest), store.conn)
    except Exception as exc:
        raise fail(exc) from None
    raise verdict(result.ok, result.report(), failure="REPORT CHANGED")


@app.command()
def keygen(
    out_dir: Annotated[str, typer.Option("--out", help="Folder for the new key pair.")],
) -> None:
    """Make an Ed25519 key pair for signing runs (private key 0600, never overwritten)."""
    from tasks.evidence.keys import SIGNING_KEY_VARIABLE, generate_key_pair

    try:
        pair = generate_key_pair(Path(out_dir))
    except Exception as exc:
        raise fail(exc) from None
    # Paths the user chose: a line break in one must not start a line of this text.
    private, public = visible_controls(pair.private), visible_controls(pair.public)
    out.print(
        literal(
            f"private key: {private} (0600)\npublic key:  {public}\n"
            f"fingerprint: {pair.key_id} (every report signed with it shows this)\n\n"
            f"Collect with {SIGNING_KEY_VARIABLE}={private} (or store the PEM text in a "
            "Prefect Secret block and set BB2SV_SIGNING_KEY_BLOCK to its name). Keep the "
            "private key away from whoever can edit the evidence file; give the public key to "
            f"the auditor: bb2sv verify --public-key {public}",
            lines=True,
        ),
        soft_wrap=True,
    )


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run read-only on the evidence file.")],
    db: DbOption = "evidence.duckdb",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Read-only, sandboxed SQL on the evidence file. Values are printed literally (control
    characters as escapes like \\x1b); CSV cells that look like formulas are neutralised."""
    from tasks.evidence.query import run_query

    if fmt not in FORMATS:
        err.print(literal(f"error: --format must be {', '.join(FORMATS)}"))
        raise typer.Exit(int(ExitCode.USAGE))
    try:
        frame = run_query(db, sql)
    except Exception as exc:
        raise fail(exc) from None
    write_frame(frame, fmt, out)


@app.command("prefect-setup")
def prefect_setup_command(
    pool: Annotated[str, typer.Option(help="Process work pool of the deployments.")] = (
        "bb2sv-process"
    ),
    notify: Annotated[
        str | None, typer.Option(help="Prefect notification block the automations use.")
    ] = None,
    secret_block: Annotated[
        list[str] | None,
        typer.Option(help="VARIABLE=BLOCK: a credential from a Secret block; repeatable."),
    ] = None,
) -> None:
    """Create (idempotently) the work pool, the credential's shared API budget and the alerts.

    Run it once against your Prefect server (PREFECT_API_URL) before `prefect deploy --all`,
    and again whenever you like: what exists and matches is left alone.
    """
    from bb2sv.prefect_setup import prefect_setup

    pairs = [item.split("=", 1) for item in secret_block or []]
    if any(len(pair) != 2 for pair in pairs):
        err.print("[bold red]error:[/] --secret-block takes VARIABLE=BLOCK, e.g. "
                  "BITBUCKET_TOKEN=bitbucket-token", highlight=False)  # fmt: skip
        raise typer.Exit(int(ExitCode.USAGE))
    try:
        results = prefect_setup(pool=pool, notify=notify, secret_blocks=dict(pairs) or None)
    except Exception as exc:
        raise fail(exc) from None
    table = Table("kind", "name", "change", "detail")
    for result in results:
        table.add_row(*(literal(value) for value in astuple(result)))
    out.print(table)
    if notify is None:
        err.print("The automations only record when they fire: pass --notify BLOCK to be told.")


@app.command()
def demo(
    directory: Annotated[str, typer.Option("--dir", help="Where the demo writes.")] = "bb2sv-demo",
    days: Annotated[int, typer.Option(help="Simulated days of history.")] = 90,
    members: Annotated[int, typer.Option(help="Members per workspace.")] = 300,
) -> None:
    """Emulator → 90 days of collections → evidence file → reports, all on this machine."""
    from bb2sv.demo import run_demo

    try:
        summary = run_demo(Path(directory), days=days, members=members, console=err)
    except Exception as exc:
        raise fail(exc) from None
    out.print(literal(summary, lines=True), soft_wrap=True)


@emulator_app.command("serve")
def emulator_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    members: Annotated[int, typer.Option(help="Members in the workspace.")] = 250,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world.")] = 1,
    token: Annotated[str, typer.Option(help="Admin Bearer token to accept.")] = "emu-admin-token",  # noqa: S107 (a fake token for the emulator)
    workspace: Annotated[str, typer.Option(help="Workspace slug.")] = "acme",
    latency: Annotated[float, typer.Option(help="Added seconds per request.")] = 0.0,
) -> None:
    """Run the emulator by itself until Ctrl-C."""
    from emulator import PortUnavailable, serve
    from tasks.bitbucket.exceptions import ConfigError

    if not 0 < port < 65536 or members < 0 or latency < 0:
        raise fail(ConfigError("--port must be 1 to 65535, --members and --latency 0 or more."))
    try:
        serve(
            port=port, members=members, seed=seed, token=token, workspace=workspace,
            latency_s=latency,
        )  # fmt: skip
    except PortUnavailable as exc:
        raise fail(
            ConfigError(f"Cannot serve on 127.0.0.1:{port} ({exc.why}); pick another --port.")
        ) from None


def main() -> None:
    # Nothing leaves the machine unasked: Prefect's anonymous usage telemetry is off.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()
