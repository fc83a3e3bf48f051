"""Making untrusted values (display names, nicknames, tickets) safe in each output format.

HTML escaping is done by Jinja2 autoescape; this module covers Markdown and CSV.

Usage::

    md_escape("<script>|x")        # '\\<script\\>\\|x'
    md_escape("www.x.io a@b.io")   # 'www\\.x.io a\u2060\\@b.io' (no autolink)
    with markdown_as_written_by(None):  # as bb2sv escaped before 0.3 (verify-report's rebuild)
        md_escape("a@b.io")        # 'a@b.io'
    neutralise_csv_cell("=SUM(A1)")  # "'=SUM(A1)"
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pandas as pd

from tasks.canonical import visible_controls

# Characters that start a formula in Excel, LibreOffice and Google Sheets (OWASP CSV injection).
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CSV_FORMULA_PATTERN = r"^[=+\-@\t\r]"
# Python's csv writer (as pandas calls it, with "\r\n" lines) quotes a cell holding any of these.
CSV_QUOTE_WHEN = (",", '"', "\r", "\n")

# Values only ever appear inside a line (table cells, after a label), never at its start, so
# escaping these is enough to stop a value opening HTML, a link, emphasis, code, an entity or
# a new table cell (CommonMark lets any ASCII punctuation be backslash-escaped).
# GitHub-flavoured Markdown also makes links of bare URLs (https://…, www.…) and e-mail
# addresses, and a display name is anyone's to choose: ':' is escaped, and the dot of
# "www."; an escaped '@' still makes an e-mail link there, so a word joiner (U+2060, not
# shown) goes before it.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&:])")
_MD_WWW_DOT = re.compile(r"(?i)(?<![0-9a-z])(www)\.")
_MD_AT = "\u2060\\@"
# Reports written before bb2sv 0.3 left autolinks alone; `bb2sv verify-report` builds theirs
# again as they were written (`markdown_as_written_by`), so an upgrade does not leave them
# unconfirmable.
_MD_SPECIAL_BEFORE_0_3 = re.compile(r"([\\`*_\[\]<>|~&])")
# A thread started inside the block sees the default, this bb2sv's escaping: a rebuild that
# rendered in threads would fail (safe), never pass a report with the old escaping.
_AUTOLINKS_ESCAPED: ContextVar[bool] = ContextVar("bb2sv_md_autolinks_escaped", default=True)


@contextmanager
def markdown_as_written_by(tool_version: str | None) -> Iterator[None]:
    """Within the block (this thread), `md_escape` escapes as the bb2sv that wrote a report
    did: None is a manifest that names none, written before 0.3; any name is 0.3 or later
    (manifests name their bb2sv since 0.3: verify-report refuses an older name)."""
    token = _AUTOLINKS_ESCAPED.set(tool_version is not None)
    try:
        yield
    finally:
        _AUTOLINKS_ESCAPED.reset(token)


def md_escape(value: object) -> str:
    """A value as literal Markdown text, safe inside a table cell. Other control characters
    show as escapes (ESC as `\\x1b`): a Markdown report is often read in a terminal, where
    they would retitle or clear it."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    if not _AUTOLINKS_ESCAPED.get():
        return _MD_SPECIAL_BEFORE_0_3.sub(r"\\\1", visible_controls(text))
    escaped = _MD_SPECIAL.sub(r"\\\1", visible_controls(text)).replace("@", _MD_AT)
    return _MD_WWW_DOT.sub(r"\1\\.", escaped)


def neutralise_csv_cell(value: object) -> object:
    """Prefix a single quote to text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def neutralise_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Vectorised `neutralise_csv_cell` over every text column (numbers are left alone)."""
    safe = frame.copy()
    for column in safe.columns:
        series = safe[column]
        if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            continue
        text = series.astype("string")
        risky = text.str.contains(_CSV_FORMULA_PATTERN, regex=True, na=False)
        if risky.any():
            safe[column] = text.where(~risky, "'" + text)
    return safe


def csv_cell(value: str | None) -> str:
    """One text cell as `render_csv` writes it (neutralised, quoted only when it must be)."""
    if value is None:
        return ""
    text = str(neutralise_csv_cell(value))
    if any(char in text for char in CSV_QUOTE_WHEN):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_cell_sql(column: str) -> str:
    """SQL for `csv_cell` of a VARCHAR column: the same neutralising and quoting, run by
    DuckDB over every row at once (with plain string tests: a regular expression per cell
    took a third longer)."""
    starts = ", ".join(str(ord(char)) for char in CSV_FORMULA_START)
    safe = f"CASE WHEN ascii({column}) IN ({starts}) THEN '''' || {column} ELSE {column} END"
    quote_when = " OR ".join(f"contains({column}, chr({ord(char)}))" for char in CSV_QUOTE_WHEN)
    return (
        f"CASE WHEN {column} IS NULL THEN '' WHEN NOT ({quote_when}) THEN {safe} "
        f"ELSE '\"' || replace({safe}, '\"', '\"\"') || '\"' END"
    )
