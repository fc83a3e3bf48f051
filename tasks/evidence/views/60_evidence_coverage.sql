-- Every UTC day between a workspace's first and last run (any status): how many runs, how
-- many complete. Days without complete evidence are listed, not hidden.
CREATE OR REPLACE VIEW evidence_coverage AS
WITH run_days AS (
    SELECT workspace, status, CAST(timezone('UTC', started_at) AS DATE) AS day
    FROM collection_runs
),
bounds AS (
    SELECT workspace, min(day) AS first_day, max(day) AS last_day
    FROM run_days
    GROUP BY workspace
),
days AS (
    SELECT workspace,
           CAST(unnest(generate_series(first_day, last_day, INTERVAL 1 DAY)) AS DATE) AS day
    FROM bounds
),
counts AS (
    SELECT workspace, day, count(*) AS runs,
           count(*) FILTER (WHERE status = 'complete') AS complete_runs
    FROM run_days
    GROUP BY workspace, day
)
SELECT
    d.day, d.workspace,
    coalesce(c.complete_runs, 0) > 0 AS has_complete_evidence,
    coalesce(c.runs, 0) AS runs,
    coalesce(c.complete_runs, 0) AS complete_runs
FROM days AS d
LEFT JOIN counts AS c ON c.workspace = d.workspace AND c.day = d.day;
