"""The daily report's member CSV, written by DuckDB from the run's population table.

    csv_bytes = member_csv(conn, "_bb2sv_run_members_…", findings, run)

One row per member, byte for byte what `render.render_csv` (pandas' `to_csv`) would write for
the same rows: formula-looking text neutralised (escaping.py), cells quoted only when they
hold a comma, a quote, CR or LF, booleans as true/false, missing values as empty cells, CRLF
line ends. At 20,000 members pandas took a quarter of a second to format it; DuckDB builds
each row's line in one vectorised query, and the population never becomes a DataFrame. The
lines come back as Arrow and their buffers are the CSV: at 100,000 members, one text built
with `string_agg` took the report ~250 MiB above its start (a DuckDB string, a Python str, a
concatenation and its encoding); the lines take ~25–35 MiB.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from tasks.arrow_text import text_of
from tasks.report.controls import EMULATOR_NOTICE
from tasks.report.escaping import csv_cell, csv_cell_sql
from tasks.report.formatting import iso_utc, iso_utc_series
from tasks.report.model import RunInfo
from tasks.report.queries import unique_name

MEMBER_CSV_COLUMNS = [
    "workspace", "run_id", "run_started_at", "member_key", "account_id", "uuid", "nickname",
    "display_name", "permission", "has_2fa_enabled", "two_step_state", "account_type", "kind",
    "in_scope", "excluded_by", "in_directory", "mfa_basis", "assessment", "severity",
    "exception_ticket", "exception_expires_on", "first_seen", "due_at", "days_open", "in_grace",
    "sla_breached", "notice",
]  # fmt: skip
_CONSTANT = ("workspace", "run_id", "run_started_at", "notice")  # one value for every row
_BOOLEAN = ("has_2fa_enabled", "in_scope", "in_directory", "in_grace", "sla_breached")
_FINDING = ("first_seen", "due_at", "days_open", "in_grace", "sla_breached")
_LINE_END = "\r\n"  # RFC 4180, as render_csv writes it


def _cell(column: str) -> str:
    source = f"f.{column}" if column in _FINDING else f"m.{column}"
    if column in _BOOLEAN:
        return f"CASE WHEN {source} IS NULL THEN '' WHEN {source} THEN 'true' ELSE 'false' END"
    if column == "days_open":
        return f"coalesce(CAST({source} AS VARCHAR), '')"
    if column == "exception_expires_on":
        return f"coalesce(strftime({source}, '%Y-%m-%d'), '')"
    return csv_cell_sql(source)


def _row_sql(population: str, findings: str) -> str:
    middle = [column for column in MEMBER_CSV_COLUMNS if column not in _CONSTANT]
    cells = ", ".join(_cell(column) for column in middle)
    return (
        f"SELECT $head || concat_ws(',', {cells}) || $tail AS line "
        f"FROM {population} AS m LEFT JOIN {findings} AS f USING (member_key) "
        "ORDER BY m.member_key NULLS LAST"
    )


def _finding_cells(findings: pd.DataFrame) -> pa.Table:
    """The finding columns of the CSV, already as text where pandas would format them."""

    def iso(column: str) -> list[str | None]:
        values = findings[column]
        return iso_utc_series(values).where(values.notna(), None).tolist()

    return pa.table(
        {
            "member_key": pa.array(findings["member_key"].tolist(), pa.string()),
            "first_seen": pa.array(iso("first_seen"), pa.string()),
            "due_at": pa.array(iso("due_at"), pa.string()),
            "days_open": pa.array(findings["days_open"].tolist(), pa.int64()),
            "in_grace": pa.array(findings["in_grace"].tolist(), pa.bool_()),
            "sla_breached": pa.array(findings["sla_breached"].tolist(), pa.bool_()),
        }
    )


def member_csv(
    conn: duckdb.DuckDBPyConnection, population: str, findings: pd.DataFrame, run: RunInfo
) -> bytes:
    """The CSV of every member in `population` (a table of sql/run_members.sql's rows) with
    the open finding of each, if any."""
    constant = {
        "workspace": run.workspace,
        "run_id": run.run_id,
        "run_started_at": iso_utc(run.started_at),
        "notice": EMULATOR_NOTICE if run.emulated else None,
    }
    head = "".join(f"{csv_cell(constant[column])}," for column in _CONSTANT[:3])
    tail = f",{csv_cell(constant['notice'])}{_LINE_END}"
    view = unique_name("findings")
    conn.register(view, _finding_cells(findings))
    try:
        rows = conn.sql(_row_sql(population, view), params={"head": head, "tail": tail})
        lines = rows.to_arrow_table()["line"]
    finally:
        conn.unregister(view)
    header = (",".join(MEMBER_CSV_COLUMNS) + _LINE_END).encode("utf-8")
    # Each line ends with its line end: the rows' own buffers, one after the other, are the
    # CSV's body, copied once into the file's bytes.
    return b"".join([header, *(text_of(chunk) for chunk in lines.chunks)])
