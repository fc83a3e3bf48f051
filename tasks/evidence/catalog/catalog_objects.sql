-- Every object one database's catalog holds, as DuckDB renders it: what `bb2sv verify`
-- compares between an evidence file and the schema bb2sv ships. $database: catalog name.
-- Run this on a connection whose search path does not include that catalog, so that no
-- function defined in it (a macro named like a built-in) takes part.
-- Each catalog function gives (kind, name, sql, database_name, internal); tables, indexes
-- and sequences have no internal ones to leave out.
SELECT kind, name, sql
FROM (
    SELECT 'table' AS kind, table_name AS name, sql, database_name, false AS internal
    FROM duckdb_tables()
    UNION ALL
    SELECT 'view', view_name, sql, database_name, internal
    FROM duckdb_views()
    UNION ALL
    SELECT
        CASE function_type WHEN 'table_macro' THEN 'table macro' ELSE 'macro' END,
        function_name,
        function_name || '(' || array_to_string(parameters, ', ') || ') AS ' || macro_definition,
        database_name, internal
    FROM duckdb_functions()
    WHERE function_type IN ('macro', 'table_macro')
    UNION ALL
    SELECT 'index', index_name, sql, database_name, false FROM duckdb_indexes()
    UNION ALL
    SELECT 'sequence', sequence_name, sql, database_name, false FROM duckdb_sequences()
    UNION ALL
    SELECT 'type', type_name, logical_type, database_name, internal FROM duckdb_types()
    UNION ALL
    SELECT 'schema', schema_name, schema_name, database_name, internal FROM duckdb_schemas()
)
WHERE database_name = $database AND NOT internal
ORDER BY kind, name, sql
