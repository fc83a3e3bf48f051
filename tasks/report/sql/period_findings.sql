-- Every finding open at some moment of the window, as it was known at the end of the window
-- (evidence macro findings_as_of), so later runs do not change a closed period's report.
-- $workspace $start $end
SELECT f.finding_id, f.member_key, f.account_id, f.uuid, f.nickname, f.display_name,
       f.permission, f.two_step_state, f.severity, f.first_seen, f.due_at, f.sla_days,
       f.resolved_at_as_of AS resolved_at,
       CASE WHEN f.resolved_at_as_of IS NOT NULL THEN f.resolution END AS resolution,
       f.overdue_as_of AS sla_breached
FROM findings_as_of(CAST($end AS DATE)) AS f
WHERE f.workspace = $workspace
  AND (f.resolved_at_as_of IS NULL
       OR f.resolved_at_as_of >= timezone('UTC', CAST(CAST($start AS DATE) AS TIMESTAMP)))
