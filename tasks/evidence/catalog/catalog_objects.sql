-- Every object one database's catalog holds, as DuckDB renders it: what `bb2sv verify`
-- compares between an evidence file and the schema bb2sv ships. $database: catalog name.
-- Run this on a connection whose search path does not include that catalog, so that no
-- function defined in it (a macro named like a built-in) takes part.
SELECT 'table' AS kind, table_name AS name, sql
FROM duckdb_tables()
WHERE database_name = $database
UNION ALL
SELECT 'view', view_name, sql
FROM duckdb_views()
WHERE database_name = $database AND NOT internal
UNION ALL
SELECT
    CASE function_type WHEN 'table_macro' THEN 'table macro' ELSE 'macro' END,
    function_name,
    function_name || '(' || array_to_string(parameters, ', ') || ') AS ' || macro_definition
FROM duckdb_functions()
WHERE database_name = $database AND function_type IN ('macro', 'table_macro') AND NOT internal
UNION ALL
SELECT 'index', index_name, sql
FROM duckdb_indexes()
WHERE database_name = $database
UNION ALL
SELECT 'sequence', sequence_name, sql
FROM duckdb_sequences()
WHERE database_name = $database
UNION ALL
SELECT 'type', type_name, logical_type
FROM duckdb_types()
WHERE database_name = $database AND NOT internal
UNION ALL
SELECT 'schema', schema_name, schema_name
FROM duckdb_schemas()
WHERE database_name = $database AND NOT internal
ORDER BY kind, name, sql
