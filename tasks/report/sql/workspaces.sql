-- Workspaces that have at least one collection run, for a clear 'unknown workspace' error.
SELECT DISTINCT workspace FROM collection_runs ORDER BY workspace
