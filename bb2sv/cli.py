"""`bb2sv`: collect, verify, query and report Bitbucket 2SV evidence.

Exit codes: 0 all complete; 1 unexpected error (or a report, event or artifact failed);
2 bad options; 3 bad configuration; 4 auth; 5 incomplete collection; 6 integrity failure;
7 evidence file locked (the attempt is spooled), corrupt or too new; 8 stopped by SIGTERM,
SIGINT or the time limit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from bb2sv import __version__
from bb2sv.errors import ExitCode, classify, exit_code_for_outcomes
from bb2sv.signals import Interrupted, interrupt_on_signals

if TYPE_CHECKING:
    from flows.outcomes import WorkspaceOutcome

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


def fail(exc: BaseException) -> typer.Exit:
    """One clear paragraph on stderr (the traceback only with --debug), and the exit code."""
    code = classify(exc)
    if STATE["debug"]:
        err.print_exception()
    message = str(exc) or type(exc).__name__
    if code is ExitCode.ERROR:
        message = f"Unexpected error ({type(exc).__name__}): {message}. Rerun with --debug."
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(int(code))


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
    err.print(
        f"[bold red]stopped by {stop.name}[/] before any workspace was read: nothing was sent "
        "or stored.",
        highlight=False,
    )
    return typer.Exit(int(ExitCode.STOPPED))


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
) -> None:
    """Run the collection flow once. Exit 0 only if every workspace produced a complete run.

    SIGTERM or SIGINT stops it within seconds: what was read is stored as failed runs naming
    the signal, and the exit code is 8.
    """
    from bb2sv.runner import run_collect_flow

    try:
        with interrupt_on_signals(), err.status(f"Collecting {len(workspace)} workspace(s)…"):
            result = run_collect_flow(
                workspace, db, reports_dir, policy, max_concurrent, retry_delay,
                attempts, give_up_after, time_limit,
            )  # fmt: skip
    except Interrupted as stop:
        raise stopped(stop) from None
    except Exception as exc:
        raise fail(exc) from None
    print_outcomes(result.outcomes)
    for outcome in result.outcomes:
        for problem in ([outcome.error] if not outcome.complete else []) + list(outcome.problems):
            err.print(f"[bold red]{outcome.workspace}:[/] {problem}", highlight=False)
    # The directory is read once per collection: say so once.
    directory = next((o for o in result.outcomes if not o.directory_complete), None)
    if directory is not None:
        err.print(
            f"[bold red]organization directory:[/] {directory.directory_error}", highlight=False
        )
    if result.stopped_by:
        not_started = ", ".join(result.not_started) or "none"
        err.print(
            f"[bold red]stopped by {result.stopped_by}[/]: the attempts in flight are stored as "
            f"failed runs; not started: {not_started}. Run the collection again.",
            highlight=False,
        )
    raise typer.Exit(int(exit_code_for_outcomes(result.outcomes, result.stopped_by)))


def print_outcomes(outcomes: list[WorkspaceOutcome]) -> None:
    table = Table("workspace", "status", "members", "directory", "report", "run_id")
    for outcome in outcomes:
        style = "green" if outcome.complete else "red"
        directory = outcome.directory_status or "not configured"
        if not outcome.directory_complete:
            directory = f"[red]{directory}[/]"
        table.add_row(
            outcome.workspace,
            f"[{style}]{outcome.status}[/]",
            str(outcome.member_count),
            directory,
            outcome.report_status or "",
            outcome.run_id,
        )
    out.print(table)


@app.command("audit-report")
def audit_report(
    workspace: Annotated[list[str], typer.Option("--workspace", "-w", help="Slug; repeatable.")],
    from_: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")],
    to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC).")],
    db: DbOption = "evidence.duckdb",
    reports_dir: ReportsOption = "reports",
) -> None:
    """Write the audit-period report from the evidence file alone."""
    from bb2sv.runner import parse_day, run_audit_flow
    from flows.outcomes import AuditIncomplete

    failure = None
    try:
        start, end = parse_day(from_, "--from"), parse_day(to, "--to")
        results = run_audit_flow(workspace, start, end, db, reports_dir)
    except AuditIncomplete as exc:
        results, failure = exc.outcomes, exc
    except Exception as exc:
        raise fail(exc) from None
    for result in results:
        out.print(f"{result.workspace}: {result.status}")
        for path in result.files.values():
            out.print(f"  {path}")
    if failure is not None:
        err.print(f"[bold red]error:[/] {failure}", highlight=False)
        raise typer.Exit(int(ExitCode.ERROR))


@app.command()
def verify(db: DbOption = "evidence.duckdb") -> None:
    """Recompute every hash and the chain; exit 6 naming the first run that does not match."""
    from tasks.evidence.integrity import verify_chain

    try:
        result = verify_chain(db)
    except Exception as exc:
        raise fail(exc) from None
    if result.ok:
        out.print(f"[green]OK[/]: {result.runs_checked} runs verified, chain intact.")
        raise typer.Exit(0)
    err.print(f"[bold red]INTEGRITY FAILURE[/] {result.summary()}", highlight=False)
    raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL to run read-only on the evidence file.")],
    db: DbOption = "evidence.duckdb",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Read-only SQL on the evidence file."""
    from tasks.evidence.query import run_query

    if fmt not in ("table", "csv", "json"):
        err.print("error: --format must be table, csv or json")
        raise typer.Exit(int(ExitCode.USAGE))
    try:
        frame = run_query(db, sql)
    except Exception as exc:
        raise fail(exc) from None
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", force_ascii=False))
        sys.stdout.write("\n")
    else:
        table = Table(*[str(c) for c in frame.columns])
        for row in frame.itertuples(index=False):
            table.add_row(*["" if v is None else str(v) for v in row])
        out.print(table)


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
        table.add_row(result.kind, result.name, result.change, result.detail)
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
    typer.echo(summary)


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
    from emulator import serve

    serve(
        port=port, members=members, seed=seed, token=token, workspace=workspace, latency_s=latency
    )


def main() -> None:
    # Nothing leaves the machine unasked: Prefect's anonymous usage telemetry is off.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()
