-- Findings (evidence view `findings`) of a run's workspace that were open at that run or
-- were resolved by it, for the given members only: the view spans the workspace's whole
-- history, and a member filter lets DuckDB push the work down to those members' rows.
-- Complete runs only: the view is built from complete runs.
-- $workspace $started_at $member_keys (VARCHAR[])
SELECT f.finding_id, f.member_key, f.first_seen, f.due_at, f.first_observed, f.grace_days,
       f.sla_days, f.first_run_id, f.resolved_run_id, f.resolution, f.severity AS worst_severity,
       f.account_id, f.uuid, f.nickname, f.display_name, f.permission, f.two_step_state
FROM findings AS f
WHERE f.workspace = $workspace
  AND f.member_key IN (SELECT unnest(CAST($member_keys AS VARCHAR[])))
  AND f.first_seen <= $started_at
  AND (f.resolved_at IS NULL OR f.resolved_at >= $started_at)
ORDER BY f.member_key, f.first_seen
