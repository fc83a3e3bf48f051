-- Per workspace and UTC day (of started_at), from that day's last COMPLETE run.
-- compliance_pct = (enabled + excepted) / members * 100, and 100 when members = 0.
CREATE OR REPLACE VIEW daily_compliance AS
WITH day_runs AS (
    SELECT
        workspace,
        CAST(timezone('UTC', started_at) AS DATE) AS day,
        arg_max(run_id, seq) AS run_id,
        max(started_at) AS started_at
    FROM collection_runs
    WHERE status = 'complete'
    GROUP BY ALL
),
counts AS (
    SELECT
        run_id,
        count(*) AS members,
        count(*) FILTER (WHERE two_step_state = 'enabled') AS enabled,
        count(*) FILTER (WHERE two_step_state = 'disabled') AS disabled,
        count(*) FILTER (WHERE two_step_state = 'unknown') AS unknown,
        count(*) FILTER (WHERE excepted) AS excepted
    FROM complete_run_members
    WHERE run_id IN (SELECT run_id FROM day_runs)
    GROUP BY run_id
)
SELECT
    d.day, d.workspace, d.run_id, d.started_at,
    coalesce(c.members, 0) AS members,
    coalesce(c.enabled, 0) AS enabled,
    coalesce(c.disabled, 0) AS disabled,
    coalesce(c.unknown, 0) AS unknown,
    coalesce(c.excepted, 0) AS excepted,
    CASE WHEN coalesce(c.members, 0) = 0 THEN 100.0
         ELSE (c.enabled + c.excepted) * 100.0 / c.members END AS compliance_pct
FROM day_runs AS d
LEFT JOIN counts AS c ON c.run_id = d.run_id;
