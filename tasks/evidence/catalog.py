"""Views and macros are code, not data: the catalog bb2sv ships, and an evidence file's
catalog compared with it.

An evidence file holds views and macros too (for people who open it with plain DuckDB), but
anyone who can write the file can replace them, or add a macro named like a built-in
(`sha256`, `count_star`) that a connection to the file would call instead. So bb2sv never
reads through them: readers attach the file into an in-memory database that holds the
shipped definitions (`tasks.evidence.sandbox`), and `bb2sv verify` reports every object of
the file that differs from, or is missing from, the shipped catalog::

    shipped_catalog()[("view", "daily_compliance")]     # 'CREATE VIEW daily_compliance AS …'
    create_shipped(conn)       # pass-through views of the file's tables + the shipped views
    catalog_problems(conn)     # ['view daily_compliance differs from …', …]

The shipped catalog is the migrations and view files applied to an empty in-memory
database, so it cannot drift from them; both sides are rendered by the same DuckDB.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import duckdb

from tasks.evidence.connection import connect, in_memory, path_literal
from tasks.evidence.errors import IntegrityError
from tasks.evidence.schema import create_views, migrate
from tasks.version import __version__

__all__ = [
    "EVIDENCE",
    "CatalogKey",
    "catalog_problems",
    "create_shipped",
    "foreign_macros",
    "read_catalog",
    "require_shipped_tables",
    "shipped_catalog",
    "shipped_tables",
    "stored_table",
]

EVIDENCE = "evidence"  # the name the evidence file is attached under
_CATALOG_SQL = Path(__file__).parent / "catalog" / "catalog_objects.sql"

CatalogKey = tuple[str, str]  # (kind, name), e.g. ("view", "findings")
TableColumn = tuple[str, str, str]  # (table, column, type)
_TABLE_COLUMNS = """
    SELECT c.table_name, c.column_name, c.data_type
    FROM duckdb_columns() AS c
    JOIN duckdb_tables() AS t USING (database_name, schema_name, table_name)
    WHERE c.database_name = ?
"""


def stored_table(name: str) -> str:
    """The qualified name of a table in the attached evidence file (for rowid reads, which
    the pass-through views cannot offer)."""
    return f'{EVIDENCE}.main."{name}"'


def read_catalog(conn: duckdb.DuckDBPyConnection, database: str) -> dict[CatalogKey, str]:
    """(kind, name) → SQL text of every object in `database` (overloads joined by newlines)."""
    sql = _CATALOG_SQL.read_text("utf-8")
    found: dict[CatalogKey, list[str]] = {}
    for kind, name, text in conn.execute(sql, {"database": database}).fetchall():
        found.setdefault((kind, name), []).append(text)
    return {key: "\n".join(texts) for key, texts in found.items()}


@cache
def _shipped() -> tuple[dict[CatalogKey, str], frozenset[TableColumn]]:
    """The catalog this bb2sv creates (every migration and view file on an empty file), and
    its tables' columns.

    Written to a temporary file and read back attached, as an evidence file is: DuckDB
    renders some definitions differently once they went through storage (a TIMESTAMP cast
    reads back as TIMESTAMP_US).
    """
    with tempfile.TemporaryDirectory(prefix="bb2sv-catalog-") as folder:
        scratch = Path(folder) / "shipped.duckdb"
        writer = connect(scratch, read_only=False)
        try:
            migrate(writer)
        finally:
            writer.close()
        reader = in_memory(external_access=True)
        try:
            reader.execute(f"ATTACH {path_literal(scratch)} AS shipped (READ_ONLY)")
            return read_catalog(reader, "shipped"), frozenset(table_columns(reader, "shipped"))
        finally:
            reader.close()


def shipped_catalog() -> dict[CatalogKey, str]:
    """(kind, name) → SQL text of every object of the catalog this bb2sv creates."""
    return _shipped()[0]


def table_columns(conn: duckdb.DuckDBPyConnection, database: str) -> set[TableColumn]:
    """(table, column, type) of every table of `database`."""
    return set(conn.execute(_TABLE_COLUMNS, [database]).fetchall())


def shipped_tables() -> list[str]:
    return sorted(name for kind, name in shipped_catalog() if kind == "table")


def require_shipped_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """The attached file (at the latest schema) has every shipped table with its columns as
    shipped; else an IntegrityError naming the tables. Readers check it as they open the file,
    the writer before it writes: a column renamed, dropped or retyped in the file would
    otherwise surface as a Binder Error in some later query, or in re-creating the views."""
    found = table_columns(conn, EVIDENCE)
    present = {table for table, _column, _type in found}
    missing = [name for name in shipped_tables() if name not in present]
    if missing:
        raise IntegrityError(
            f"The evidence file has no table {', '.join(missing)} (it was dropped or replaced "
            "by something else), so bb2sv will not use it. Restore the file from a backup; "
            "`bb2sv verify` shows what else differs."
        )
    changed = sorted({table for table, _column, _type in _shipped()[1] - found})
    if changed:
        raise IntegrityError(
            f"The evidence file's table {', '.join(changed)} lacks columns bb2sv's has "
            "(renamed, dropped or retyped), so bb2sv will not use it. It was edited or "
            "damaged: restore it from a backup."
        )


def create_shipped(conn: duckdb.DuckDBPyConnection) -> None:
    """In the connection's own (in-memory) database: a view per evidence table that reads the
    attached file's table, then the shipped views and macros on top of them (bound when a
    query uses them, once `require_shipped_tables` has seen the tables are bb2sv's)."""
    require_shipped_tables(conn)
    for name in shipped_tables():
        conn.execute(
            f'CREATE VIEW "{name}" WITH (DEFER_BINDING) AS SELECT * FROM {stored_table(name)}'
        )
    create_views(conn, defer_binding=True)


def foreign_macros(found: dict[CatalogKey, str]) -> list[str]:
    """Macros in an evidence file's catalog (`read_catalog(conn, EVIDENCE)`) that bb2sv does
    not ship. They change what SQL run *in* the file means (a macro named sha256 replaces
    the built-in there), so bb2sv does not write to a file that has them."""
    shipped = {name for kind, name in shipped_catalog() if kind.endswith("macro")}
    return sorted({name for kind, name in found if kind.endswith("macro")} - shipped)


def catalog_problems(
    conn: duckdb.DuckDBPyConnection, found: dict[CatalogKey, str] | None = None
) -> list[str]:
    """How the attached evidence file's catalog differs from the shipped one (empty: same);
    `found`: its catalog, when already read."""
    found = read_catalog(conn, EVIDENCE) if found is None else found
    shipped = shipped_catalog()
    problems = []
    for kind, name in sorted(found.keys() | shipped.keys()):
        key = (kind, name)
        if key not in found:
            problems.append(f"{kind} {name} is missing from the file (dropped)")
        elif key not in shipped:
            problems.append(
                f"{kind} {name} is not part of bb2sv's schema (added to the file by hand; "
                "plain DuckDB users of the file would see or call it)"
            )
        elif found[key] != shipped[key]:
            problems.append(
                f"{kind} {name} differs from the definition shipped with bb2sv {__version__} "
                "(edited in the file, or written by another bb2sv version; bb2sv itself only "
                "uses the shipped one, and the next `bb2sv collect` re-creates it)"
            )
    return problems
