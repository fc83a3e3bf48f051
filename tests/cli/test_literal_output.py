"""Hostile values reach the terminal literally: never as Rich markup (`[/]` alone would raise),
emoji codes or terminal escape sequences, and `query --format csv` neutralises formula cells.

The values come from a stored observation (a display name an attacker chose in Bitbucket),
from an edited evidence file, from a server's error message, and from the user's options.
Everything runs in-process through `bb2sv.cli.app`; only the collection needs Prefect."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from bb2sv.cli import app
from emulator.offline import make_extract, member
from tasks.evidence.store import EvidenceStore
from tasks.policy import DEFAULT_POLICY

HOSTILE = "[/]\x1b]0;pwned\x07=cmd|' /C calc'!A0"  # markup, an OSC title, a formula
SHOWN = "[/]\\x1b]0;pwned\\x07=cmd|' /C calc'!A0"  # how the terminal must show it
RAW_CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) != "\n"]


def cli(*args: str, env: dict[str, str] | None = None):
    cleared = {name: None for name in os.environ if name.startswith(("BITBUCKET_", "BB2SV_"))}
    return CliRunner().invoke(app, list(args), env={**cleared, **(env or {})})


def assert_literal(result) -> None:
    """The command ended on its own terms, and no control character reached the output."""
    assert not isinstance(result.exception, Exception), repr(result.exception)
    leaked = [c for c in RAW_CONTROLS if c in result.output]
    assert leaked == [], f"raw control characters in the output: {leaked!r}"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> SimpleNamespace:
    """One run whose members chose their names: markup, escapes and spreadsheet formulas."""
    root = tmp_path_factory.mktemp("hostile")
    members = [
        member("[/]", False, display_name=HOSTILE),
        member("[bold]x[/]", True, display_name=":warning: [red]ok[/red]"),
        member("tabbed", True, display_name="\t@SUM(A1)"),
    ]
    db = root / "evidence.duckdb"
    with EvidenceStore.open(db) as store:
        run = store.record_run(
            make_extract("acme", members, day=date(2026, 11, 2)), policy=DEFAULT_POLICY
        )
    return SimpleNamespace(root=root, db=str(db), run=run)


QUERY = "SELECT nickname, display_name FROM member_2sv_observations ORDER BY nickname"


def test_query_table_shows_markup_and_escapes_as_text(hostile):
    result = cli("query", QUERY, "--db", hostile.db)
    assert result.exit_code == 0, result.output
    assert_literal(result)
    for shown in ("[/]", SHOWN, "[bold]x[/]", ":warning: [red]ok[/red]", "\\x09@SUM(A1)"):
        assert shown in result.stdout


def test_query_csv_neutralises_formulas_and_shows_escapes(hostile):
    query = QUERY.replace("FROM", ", '\u009b31m' AS \"=c1\", -1 AS n FROM")
    result = cli("query", query, "--db", hostile.db, "--format", "csv")
    assert result.exit_code == 0, result.output
    assert_literal(result)
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert header == ["nickname", "display_name", "'=c1", "n"]
    assert rows == [
        ["[/]", SHOWN, "\\x9b31m", "-1"],  # a number stays a number
        ["[bold]x[/]", ":warning: [red]ok[/red]", "\\x9b31m", "-1"],
        ["tabbed", "'\\x09@SUM(A1)", "\\x9b31m", "-1"],  # the tab would start a formula
    ]
    formula = cli("query", "SELECT '=cmd|'' /C calc''!A0' AS f", "--db", hostile.db,
                  "--format", "csv")  # fmt: skip
    assert formula.stdout.splitlines() == ["f", "'=cmd|' /C calc'!A0"]


def test_query_json_escapes_every_control_character_and_keeps_the_value(hostile):
    query = QUERY.replace("FROM", ", '\u009b31m' AS c1 FROM")
    result = cli("query", query, "--db", hostile.db, "--format", "json")
    assert result.exit_code == 0, result.output
    assert_literal(result)
    rows = json.loads(result.stdout)
    assert rows[0] == {"nickname": "[/]", "display_name": HOSTILE, "c1": "\u009b31m"}


def test_error_messages_quote_values_literally(hostile):
    result = cli("query", f'SELECT * FROM "{HOSTILE}"', "--db", hostile.db)
    assert result.exit_code == 2
    assert_literal(result)
    assert f"Table with name {SHOWN} does not exist" in result.stderr


def test_verify_shows_a_hostile_run_id_on_its_own_line(hostile, tmp_path):
    forged = "x\nOK: 9 runs verified, chain intact.\x1b[2J[/]"  # a line of its own, a wipe
    log = tmp_path / "anchors.jsonl"  # the log is outside the file: anyone may have edited it
    line = {"schema": "bb2sv.anchor/1", "run_id": forged, "seq": 2, "run_hash": "ab" * 32}
    log.write_text(json.dumps(line) + "\n")
    result = cli("verify", "--db", hostile.db, "--anchor-log", str(log))
    assert result.exit_code == 6, result.output
    assert_literal(result)
    assert "seq 2 x\\x0aOK: 9 runs verified, chain intact.\\x1b[2J[/]: anchored" in result.stderr
    assert not any(line.startswith("OK") for line in result.output.splitlines())


def test_paths_the_user_chose_are_printed_literally(tmp_path):
    folder = tmp_path / "[/]keys\x1b[8m"
    result = cli("keygen", "--out", str(folder))
    assert result.exit_code == 0, result.output
    assert_literal(result)
    assert f"{tmp_path}/[/]keys\\x1b[8m/bb2sv-signing-key.pem" in result.stdout


class HostileApi(BaseHTTPRequestHandler):
    """A Bitbucket stand-in that refuses every request with a hostile error message."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"type": "error", "error": {"message": HOSTILE}}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hostile_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/2.0"
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("no_prefect_api")
def test_collect_prints_a_servers_words_literally(tmp_path, hostile_api, hostile):
    result = cli(
        "collect", "--workspace", "acme", "--db", str(tmp_path / "e.duckdb"),
        "--reports-dir", str(tmp_path / "r"), "--retry-delay", "0",
        env={"BITBUCKET_API_URL": hostile_api, "BITBUCKET_TOKEN": "t-hostile"},
    )  # fmt: skip
    assert result.exit_code == 4, result.output  # a 403 is a permission problem
    assert_literal(result)
    assert "acme" in result.stdout and "failed" in result.stdout  # the outcome table
    error_line = next(line for line in result.stderr.splitlines() if line.startswith("acme:"))
    assert SHOWN in error_line
    # audit-report prints the paths of what it wrote, under a folder the user named.
    reports = tmp_path / "[bold]r[/]\x1b[8m"
    audit = cli(
        "audit-report", "--workspace", "acme", "--from", "2026-11-01", "--to", "2026-11-02",
        "--db", hostile.db, "--reports-dir", str(reports),
    )  # fmt: skip
    assert audit.exit_code == 0, audit.output
    assert_literal(audit)
    assert f"{tmp_path}/[bold]r[/]\\x1b[8m/2026-11-02/acme/audit-" in audit.stdout
