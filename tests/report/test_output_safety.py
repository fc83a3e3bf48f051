"""Hostile values, self-contained HTML, write-once files and byte-identical rebuilds."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import date

import pandas as pd
import pytest

from tasks.evidence.store import EvidenceStore
from tasks.report import ReportConflict, write_daily_report, write_period_report
from tasks.report.controls import EMULATOR_NOTICE
from tasks.report.daily import load_daily
from tasks.report.formatting import iso_utc
from tasks.report.member_csv import MEMBER_CSV_COLUMNS
from tasks.report.queries import frame_of, temp_table
from tasks.report.render import render_csv

PAYLOADS = {
    "xss": "<script>alert(1)</script>",
    "hyperlink": '=HYPERLINK("http://evil.example/x","click")',
    "plus": "+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "minus": "-2+3",
    "tab": "\tleading tab",
    "cr": "\rleading cr",
    "md": "**bold** | [link](http://evil.example) `code`",
    "terminal": "\x1b]0;pwned\x07\x1b[2J\x1b[31mred",  # retitles, clears, colours a terminal
    "autolink": "re-verify at https://evil.example/x, www.evil.example or help@evil.example",
}
NETWORK_REF = re.compile(
    r"<(?:link|script|img|iframe|source|video|audio|object|embed)\b[^>]*"
    r"\b(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def evidence(tmp_path_factory, build):
    path = tmp_path_factory.mktemp("safety") / "evidence.duckdb"
    hostile = [build.member(f"user-{name}", False, display_name=value)
               for name, value in PAYLOADS.items()]  # fmt: skip
    people = [build.member("alice", True, "owner"), *hostile]
    with EvidenceStore.open(path) as store:
        ids = [
            build.record(store, "acme", date(2026, 11, 26), people),
            build.record(store, "acme", date(2026, 11, 27), people, hour=6),
            build.record(store, "acme", date(2026, 11, 27), people, hour=18),  # same day
        ]
    with EvidenceStore.open(path, read_only=True) as reader:
        yield reader.conn, ids


def snapshot(directory) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def test_html_escapes_every_hostile_value(evidence, tmp_path):
    conn, ids = evidence
    html = write_daily_report(conn, ids[1], tmp_path).files["html"].read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=HYPERLINK(&#34;http://evil.example/x&#34;,&#34;click&#34;)" in html
    assert "[link](http://evil.example)" in html  # shown as text, not a link
    assert 'href="http://evil.example' not in html


def test_member_csv_is_what_pandas_writes_for_the_same_rows(evidence, tmp_path):
    """DuckDB builds the daily CSV's lines (member_csv.py); pandas' writer (render_csv) is
    the reference for quoting, neutralising, booleans and missing cells, byte for byte."""
    conn, ids = evidence
    bundle = write_daily_report(conn, ids[1], tmp_path)
    report = load_daily(conn, ids[1])
    with temp_table(conn, "run_members", run_id=ids[1]) as population:
        members = frame_of(conn, f"SELECT * FROM {population}")
    finding = ["member_key", "first_seen", "due_at", "days_open", "in_grace", "sla_breached"]
    rows = members.drop(columns=finding[1:], errors="ignore").merge(
        report.findings[finding], on="member_key", how="left"
    )
    assert rows["first_seen"].notna().sum() == len(PAYLOADS)  # the hostile members' findings
    for column in ("first_seen", "due_at"):
        rows[column] = [iso_utc(value) for value in rows[column]]
    rows["days_open"] = rows["days_open"].astype("Int64")
    for column in ("in_grace", "sla_breached"):
        rows[column] = rows[column].astype("boolean")
    rows["exception_expires_on"] = [
        None if pd.isna(day) else f"{day:%Y-%m-%d}" for day in rows["exception_expires_on"]
    ]
    run = report.run
    rows = rows.assign(
        workspace=run.workspace,
        run_id=run.run_id,
        run_started_at=iso_utc(run.started_at),
        notice=EMULATOR_NOTICE if run.emulated else None,
    )
    rows = rows.sort_values("member_key", kind="mergesort")[MEMBER_CSV_COLUMNS]
    expected = render_csv(rows.reset_index(drop=True))
    assert bundle.files["csv"].read_bytes() == expected
    assert report.members_csv == expected


def test_csv_neutralises_formula_cells(evidence, tmp_path):
    conn, ids = evidence
    bundle = write_daily_report(conn, ids[1], tmp_path)
    rows = list(csv.DictReader(io.StringIO(bundle.files["csv"].read_bytes().decode(), newline="")))
    names = {row["nickname"]: row["display_name"] for row in rows}
    for key in ("hyperlink", "plus", "at", "minus", "tab", "cr"):
        assert names[f"user-{key}"] == "'" + PAYLOADS[key], key
    assert names["user-xss"] == PAYLOADS["xss"]  # not a formula: kept as is
    assert names["alice"] == "Alice"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    # Numbers are numbers: days_open is not quoted.
    assert {row["days_open"] for row in rows if row["nickname"] != "alice"} == {"1"}


def test_markdown_escapes_hostile_values(evidence, tmp_path):
    conn, ids = evidence
    md = write_daily_report(conn, ids[1], tmp_path).files["md"].read_text()
    assert "<script>" not in md and r"\<script\>alert(1)\</script\>" in md
    assert r"\*\*bold\*\* \| \[link\](http\://evil.example) \`code\`" in md
    # GitHub-flavoured Markdown links bare URLs, www. names and e-mail addresses: not these.
    assert "re-verify at https\\://evil.example/x, www\\.evil.example or help\u2060\\@evil" in md


def test_markdown_rendered_as_github_does_shows_every_value_as_text(evidence, tmp_path):
    """The daily Markdown report through cmark-gfm (GitHub's renderer, its table and autolink
    extensions): no value becomes a link, an element or another table cell."""
    import cmarkgfm
    from cmarkgfm.cmark import Options

    conn, ids = evidence
    md = write_daily_report(conn, ids[1], tmp_path).files["md"].read_text()
    html = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)
    assert "<table>" in html
    links = re.findall(r'<a href="([^"]*)"', html)
    assert not [link for link in links if "evil" in link], links
    assert "https://evil.example/x, www.evil.example or help\u2060@evil.example" in html
    assert "<script" not in html and "<strong>bold" not in html and "<code>code" not in html
    rows = [row for row in html.split("<tr>") if "user-" in row and "high" in row]
    assert len(rows) == len(PAYLOADS)
    assert {row.count("<td") for row in rows} == {10}, "one cell per column, whatever the name"
    assert "\x1b" not in md and "\x07" not in md, "no control character reaches a terminal"
    assert r"\\x1b\]0;pwned\\x07\\x1b\[2J\\x1b\[31mred" in md  # shown, as escapes
    # Every findings row keeps exactly 10 cells despite the pipe in a display name.
    rows = [line for line in md.splitlines() if line.startswith("| high |")]
    assert len(rows) == len(PAYLOADS)
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 11 for row in rows)


def test_html_loads_nothing_from_the_network(evidence, tmp_path):
    conn, ids = evidence
    daily = write_daily_report(conn, ids[1], tmp_path).files["html"].read_text()
    period = (
        write_period_report(conn, "acme", date(2026, 11, 1), date(2026, 11, 27), tmp_path)
        .files["html"]
        .read_text()
    )
    for html in (daily, period):
        assert not NETWORK_REF.search(html)
        assert not re.search(r"<link\b|<script\b|@import|url\(", html, re.IGNORECASE)
        assert "<style>" in html and "@media print" in html
    assert "<svg" in period


def test_same_day_rerun_adds_files_and_changes_none(evidence, tmp_path):
    conn, ids = evidence
    morning = write_daily_report(conn, ids[1], tmp_path)
    before = snapshot(tmp_path)
    evening = write_daily_report(conn, ids[2], tmp_path)
    after = snapshot(tmp_path)
    assert morning.directory == evening.directory == tmp_path / "2026-11-27" / "acme"
    assert {k: after[k] for k in before} == before
    assert len(after) == len(before) * 2
    assert morning.files["md"].name.startswith("daily-20261127T060000Z")
    assert evening.files["md"].name.startswith("daily-20261127T180000Z")


def test_rebuild_is_byte_identical(evidence, tmp_path):
    conn, ids = evidence

    def write_all():
        for run_id in ids:
            write_daily_report(conn, run_id, tmp_path)
        write_period_report(conn, "acme", date(2026, 11, 20), date(2026, 11, 27), tmp_path)
        return snapshot(tmp_path)

    first = write_all()
    assert write_all() == first  # identical files are left alone
    shutil.rmtree(tmp_path)
    assert write_all() == first
    (manifest_path,) = (tmp_path / "2026-11-27/acme").glob(
        "audit-2026-11-20_2026-11-27-*.manifest.json"
    )
    manifest = json.loads(manifest_path.read_bytes())
    assert len(manifest["files"]) == 6  # md, html, csv, json, svg, members.csv


def test_different_content_is_never_overwritten(evidence, tmp_path):
    conn, ids = evidence
    bundle = write_daily_report(conn, ids[0], tmp_path)
    bundle.files["html"].write_text("tampered")
    bundle.files["csv"].unlink()
    with pytest.raises(ReportConflict, match="already exists with different content"):
        write_daily_report(conn, ids[0], tmp_path)
    assert bundle.files["html"].read_text() == "tampered"
    assert not bundle.files["csv"].exists()  # nothing written when any file conflicts
