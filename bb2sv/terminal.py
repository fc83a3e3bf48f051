"""What the command line prints, printed literally.

Values in bb2sv's output come from people and systems it does not control: nicknames and
display names from the API, run ids and rows from an evidence file someone may have edited,
error messages quoting a server, the user's own options. Printed as they are, Rich would read
`[bold]x[/]` as markup (and `[/]` alone raises), turn `:warning:` into an emoji, and the
terminal would act on ESC, CSI and OSC sequences (a changed window title, hidden text, a
rewritten line). So everything goes out as a `rich.text.Text`, which Rich never parses, with
its control characters made visible (`\\x1b`)::

    err.print(labelled("error:", message))          # "error:" in bold red, message literal
    out.print(literal(report, lines=True))          # bb2sv's own line breaks kept
    write_frame(frame, "csv", out)                  # `bb2sv query` results, any format
"""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from tasks.canonical import visible_controls

if TYPE_CHECKING:  # imported when used: every command imports this module
    import pandas as pd
    from rich.console import Console

__all__ = ["FORMATS", "labelled", "literal", "logs_printed", "write_frame"]

FORMATS = ("table", "csv", "json")

# JSON escapes C0 controls itself, but not DEL or the C1 controls (U+009B is CSI): these may
# only appear inside JSON strings, where a \u escape means the same character.
_JSON_RAW_CONTROL = re.compile(r"[\x7f-\x9f]")


def literal(value: object, style: str = "", *, lines: bool = False) -> Text:
    """`value` as Text that Rich prints as it is; control characters visible, except the
    line breaks of text bb2sv itself laid out in lines (`lines=True`)."""
    return Text(visible_controls("" if value is None else value, keep="\n" if lines else ""), style)


def labelled(label: str, value: object, style: str = "bold red", *, lines: bool = False) -> Text:
    """`label` in `style`, a space, then `value`; both literally."""
    return Text.assemble((visible_controls(label), style), " ", literal(value, lines=lines))


def write_frame(frame: pd.DataFrame, fmt: str, console: Console) -> None:
    """Query results in `fmt` (one of FORMATS), every value shown literally. CSV cells that a
    spreadsheet would run as a formula are neutralised as in the reports' CSV files."""
    if fmt == "csv":
        from tasks.report.escaping import neutralise_csv_cell, neutralise_csv_frame

        safe = neutralise_csv_frame(frame)
        safe.columns = [neutralise_csv_cell(str(column)) for column in safe.columns]
        buffer = io.StringIO()
        safe.map(_visible_cell).rename(columns=visible_controls).to_csv(buffer, index=False)
        sys.stdout.write(buffer.getvalue())
    elif fmt == "json":
        text = frame.to_json(orient="records", date_format="iso", force_ascii=False)
        sys.stdout.write(_JSON_RAW_CONTROL.sub(lambda c: f"\\u{ord(c[0]):04x}", text) + "\n")
    else:
        table = Table()
        for column in frame.columns:
            table.add_column(literal(column))
        for row in frame.itertuples(index=False):
            table.add_row(*[literal(_blank_if_missing(value)) for value in row])
        console.print(table)


def _blank_if_missing(value: object) -> object:
    """SQL NULL reaches pandas as None, NaN, NaT or pd.NA: show it as an empty cell."""
    try:
        if value is None or value != value:  # NaN and NaT are not equal to themselves
            return ""
    except TypeError:  # pd.NA refuses to be a bool
        return ""
    return value


def _visible_cell(value: object) -> object:
    return visible_controls(value) if isinstance(value, str) else value


class LiteralLogHandler(logging.Handler):
    """Log records as `warning: message` lines on a console, the message literally (it may
    quote a server)."""

    def __init__(self, console: Console, level: int) -> None:
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = "bold red" if record.levelno >= logging.ERROR else "bold yellow"
            self.console.print(labelled(f"{record.levelname.lower()}:", record.getMessage(), style))
        except Exception:
            self.handleError(record)


@contextmanager
def logs_printed(console: Console) -> Iterator[None]:
    """While the block runs, `bb2sv.*` warnings and errors are printed on `console` (an
    ad-hoc collection has no Prefect to show them)."""
    logger = logging.getLogger("bb2sv")
    handler = LiteralLogHandler(console, logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
