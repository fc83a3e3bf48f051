"""Views and macros are code, not data: the catalog bb2sv ships, and an evidence file's
catalog compared with it.

An evidence file holds views and macros too (for people who open it with plain DuckDB), but
anyone who can write the file can replace them, or add a macro named like a built-in
(`sha256`, `count_star`) that a connection to the file would call instead. So bb2sv never
reads through them: readers attach the file into an in-memory database, beside the
shipped definitions (`tasks.evidence.sandbox`), and `bb2sv verify` reports every object of
the file that differs from, or is missing from, the shipped catalog::

    shipped_catalog()[("view", "daily_compliance")]     # 'CREATE VIEW daily_compliance AS …'
    create_shipped(conn)       # a reader on the shipped views and macros (reader_catalog)
    catalog_problems(conn)     # ['view daily_compliance differs from …', …]

The shipped catalog is the migrations and view files applied to an empty file, so it
cannot drift from them; both sides are rendered by the same DuckDB. Each process builds it
once, in a private folder of its own, with the readers' catalog beside it
(`reader_catalog`): a small DuckDB file holding the pass-through views and the shipped views
and macros, which every reader attaches instead of creating them again.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tasks.evidence.connection import connect, in_memory, path_literal
from tasks.evidence.errors import IntegrityError
from tasks.evidence.page_bodies import give_page_body_function, page_body_macro
from tasks.evidence.schema import create_views, migrate
from tasks.version import __version__

__all__ = [
    "EVIDENCE",
    "SHIPPED",
    "CatalogKey",
    "catalog_problems",
    "create_shipped",
    "empty_evidence_file",
    "foreign_macros",
    "rebuilt_tables",
    "read_catalog",
    "require_shipped_tables",
    "shipped_catalog",
    "shipped_tables",
    "stored_table",
]

EVIDENCE = "evidence"  # the name the evidence file is attached under
SHIPPED = "bb2sv"  # the name readers attach the readers' catalog under (their current database)
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


@dataclass(frozen=True, slots=True)
class _Shipped:
    catalog: dict[CatalogKey, str]
    columns: frozenset[TableColumn]
    readers: Path  # the readers' catalog file
    empty_file: bytes  # the bytes of that empty file: what a new evidence file starts as


_BUILT: dict[int, _Shipped] = {}  # by process id: a forked child builds its own
_BUILDING = threading.Lock()


def _shipped() -> _Shipped:
    """The catalog this bb2sv creates (every migration and view file on an empty file), its
    tables' columns, the readers' catalog file, and that empty file's bytes; built once per
    process.

    The empty file is read back attached, as an evidence file is: DuckDB renders some
    definitions differently once they went through storage (a TIMESTAMP cast reads back as
    TIMESTAMP_US).
    """
    with _BUILDING:
        built = _BUILT.get(os.getpid())
        # A long-lived process may outlive its folder (a cleaner of old temporary files).
        if built is None or not built.readers.exists():
            built = _BUILT[os.getpid()] = _build_shipped()
        return built


def _build_shipped() -> _Shipped:
    folder = _private_folder()
    empty = folder / "shipped.duckdb"
    writer = connect(empty, read_only=False)
    try:
        migrate(writer)
    finally:
        writer.close()
    readers = folder / "readers.duckdb"
    builder = in_memory(external_access=True)
    try:
        builder.execute(f"ATTACH {path_literal(empty)} AS {EVIDENCE} (READ_ONLY)")
        catalog = read_catalog(builder, EVIDENCE)
        columns = frozenset(table_columns(builder, EVIDENCE))
        builder.execute(f"ATTACH {path_literal(readers)} AS {SHIPPED}")
        builder.execute(f"USE {SHIPPED}")
        tables = sorted(name for kind, name in catalog if kind == "table")
        for name in tables:
            builder.execute(
                f'CREATE VIEW "{name}" WITH (DEFER_BINDING) AS SELECT * FROM {stored_table(name)}'
            )
        # Bound when a query uses them; the table macros are bound here, against the empty
        # file's tables, which `require_shipped_tables` holds every file a reader opens to.
        create_views(builder, defer_binding=True)
        # Readers expand compressed page bodies with a function of their own, which
        # `sandbox.attach` gives each reader's connection (DuckDB checks it exists here too).
        give_page_body_function(builder)
        builder.execute(page_body_macro(temporary=False))
    finally:
        builder.close()
    image = empty.read_bytes()  # kept in memory: nobody can swap it for another
    empty.unlink()
    return _Shipped(catalog, columns, readers, image)


_FOLDER_PREFIX = "bb2sv-catalog-"


def _private_folder() -> Path:
    """A new temporary folder of this process (mode 0700: nobody else can plant a catalog
    in it), named by its process id and removed at exit. Ones left by processes that were
    killed (SIGKILL skips the removal) are removed first."""
    _remove_left_behind()
    owner = os.getpid()
    folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{owner}-"))
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    return folder


def _remove_left_behind() -> None:
    """Housekeeping only: nothing found in the temporary folder may fail the caller."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(_FOLDER_PREFIX).split("-", 1)[0]
        if not (pid.isascii() and pid.isdigit() and 0 < int(pid) < 2**31):
            continue  # not a name this code gives (os.kill takes a C int)
        try:
            found = folder.lstat()
            if found.st_uid != os.getuid() or not stat.S_ISDIR(found.st_mode):
                continue
            os.kill(int(pid), 0)  # raises once that process is gone
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # another user's process, or the folder went meanwhile
            continue


def reader_catalog() -> Path:
    """The readers' catalog file: a view per evidence table that reads the attached file's
    table (`evidence.main.<name>`), then the shipped views and macros on top of them. Readers
    attach it read-only as `SHIPPED` and make it their current database (`create_shipped`).
    Creating those objects in each reader's own database cost about half of its open (the
    table macros are bound as they are created); attaching them is a few milliseconds."""
    return _shipped().readers


def empty_evidence_file() -> bytes:
    """The bytes of an evidence file at the latest schema, with its views and no runs: the
    migrations and view files applied to an empty file, as `shipped_catalog` reads them. A
    new evidence file is a copy (`creation.create`): migrating each one again took about
    80 ms of CPU, copying takes a few."""
    return _shipped().empty_file


def shipped_catalog() -> dict[CatalogKey, str]:
    """(kind, name) → SQL text of every object of the catalog this bb2sv creates."""
    return _shipped().catalog


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
    changed = sorted({table for table, _column, _type in _shipped().columns - found})
    if changed:
        raise IntegrityError(
            f"The evidence file's table {', '.join(changed)} lacks columns bb2sv's has "
            "(renamed, dropped or retyped), so bb2sv will not use it. It was edited or "
            "damaged: restore it from a backup."
        )


def create_shipped(conn: duckdb.DuckDBPyConnection) -> None:
    """Put the reader on the shipped catalog: the readers' catalog (`reader_catalog`),
    attached by `sandbox.attach`, becomes its current database, once `require_shipped_tables`
    has seen the file's tables are bb2sv's. Its views are bound when a query uses them."""
    require_shipped_tables(conn)
    conn.execute(f"USE {SHIPPED}")


def foreign_macros(found: dict[CatalogKey, str]) -> list[str]:
    """Macros in an evidence file's catalog (`read_catalog(conn, EVIDENCE)`) that bb2sv does
    not ship. They change what SQL run *in* the file means (a macro named sha256 replaces
    the built-in there), so bb2sv does not write to a file that has them."""
    shipped = {name for kind, name in shipped_catalog() if kind.endswith("macro")}
    return sorted({name for kind, name in found if kind.endswith("macro")} - shipped)


def rebuilt_tables(found: dict[CatalogKey, str]) -> list[str]:
    """Tables of an evidence file's catalog (`read_catalog(conn, EVIDENCE)`, at the latest
    schema) whose definition is not the shipped one: rebuilt, their constraints or storage
    changed (a CHECK dropped lets rows in that bb2sv's readers and verify then judge)."""
    shipped = shipped_catalog()
    return sorted(
        name
        for (kind, name), text in found.items()
        if kind == "table" and (kind, name) in shipped and shipped[(kind, name)] != text
    )


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
        elif found[key] != shipped[key] and kind == "table":
            problems.append(
                f"table {name} differs from the definition shipped with bb2sv {__version__} "
                "(rebuilt in the file, its constraints or storage changed: bb2sv never "
                "re-creates a table. Restore the file from a backup)"
            )
        elif found[key] != shipped[key]:
            problems.append(
                f"{kind} {name} differs from the definition shipped with bb2sv {__version__} "
                "(edited in the file, or written by another bb2sv version; bb2sv itself only "
                "uses the shipped one, and the next `bb2sv collect` re-creates it)"
            )
    return problems
