"""Schema versioning: numbered migrations and views, applied in one transaction.

    version = schema_version(conn)   # 0 for an empty database
    migrate(conn)                    # pending migrations + views, all or nothing

Migrations live in migrations/NNNN_name.sql and run in number order; views and table macros
in views/*.sql are re-created (CREATE OR REPLACE) after a migration, and on a writable open of
a file whose catalog differs from the shipped one (they hold no data, and re-creating them
lets a new bb2sv fix a view without a migration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb

_HERE = Path(__file__).parent
_MIGRATION_NAME = re.compile(r"^(?P<number>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    found = []
    for path in sorted((_HERE / "migrations").glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append(Migration(int(match["number"]), match["name"], path.read_text("utf-8")))
    numbers = [migration.version for migration in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, got {numbers}")
    return tuple(found)


LATEST_VERSION = len(migrations())


def view_files() -> list[Path]:
    return sorted((_HERE / "views").glob("*.sql"))


def user_tables(conn: duckdb.DuckDBPyConnection, database: str | None = None) -> set[str]:
    """Tables of `database` (default: the connection's current one)."""
    rows = conn.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = coalesce(?, current_database())",
        [database],
    ).fetchall()
    return {name for (name,) in rows}


def schema_version(conn: duckdb.DuckDBPyConnection, database: str | None = None) -> int | None:
    """Highest applied migration; 0 for an empty database; None if it has foreign tables."""
    tables = user_tables(conn, database)
    if "schema_version" not in tables:
        return 0 if not tables else None
    table = "schema_version" if database is None else f"{database}.main.schema_version"
    (version,) = conn.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchall()[0]
    return int(version)


def migrate(
    conn: duckdb.DuckDBPyConnection, *, target: int = LATEST_VERSION, views: bool = True
) -> int:
    """Apply pending migrations up to `target`, then (at the latest version, unless
    `views=False` and nothing was migrated) (re)create the views, in ONE transaction.

    `views=False`: the caller has seen that the file's catalog is already the shipped one,
    so re-creating its views (tens of milliseconds of binding) would change nothing.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        current = schema_version(conn) or 0
        for migration in migrations():
            if current < migration.version <= target:
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, now())",
                    [migration.version, migration.name],
                )
        if target == LATEST_VERSION and (views or current < target):
            create_views(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(current, target)


def create_views(conn: duckdb.DuckDBPyConnection, *, defer_binding: bool = False) -> None:
    """The shipped views and macros. `defer_binding`: DuckDB binds each view when a query
    uses it instead of now (`WITH (DEFER_BINDING)`), for a connection that only reads: in a
    read-only open, binding the views up front took about half of its 40 ms, and a query
    binds the views it reads anyway. The file's own views are always bound when created, so
    a broken one is refused before it is stored."""
    for sql in view_sql(defer_binding=defer_binding):
        conn.execute(sql)


_VIEW_HEAD = re.compile(r"^CREATE OR REPLACE VIEW (\w+) AS$", re.MULTILINE)


@cache
def view_sql(*, defer_binding: bool) -> tuple[str, ...]:
    texts = tuple(path.read_text("utf-8") for path in view_files())
    if not defer_binding:
        return texts
    deferred = []
    for path, text in zip(view_files(), texts, strict=True):
        changed, count = _VIEW_HEAD.subn(r"CREATE OR REPLACE VIEW \1 WITH (DEFER_BINDING) AS", text)
        if count != text.count("CREATE OR REPLACE VIEW"):  # a head written another way
            raise RuntimeError(f"{path.name}: write each view as 'CREATE OR REPLACE VIEW name AS'")
        deferred.append(changed)
    return tuple(deferred)
