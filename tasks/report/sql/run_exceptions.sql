-- Exceptions of the policy stored with a run that apply to its workspace and are still in force
-- on the run's UTC day (an exception applies on days strictly before expires_on), and name a
-- member as the run is judged (by account_id; a nickname only in runs stored before 0.4:
-- the others are run_unnamed_exceptions.sql).  $run_id
SELECT e.account_id, e.nickname, e.reason, e.approved_by, e.ticket, e.expires_on
FROM policy_exceptions AS e
JOIN collection_runs AS r ON r.run_id = e.run_id
WHERE e.run_id = $run_id
  AND e.workspace = r.workspace
  AND (r.started_at AT TIME ZONE 'UTC')::DATE < e.expires_on
  AND (e.account_id IS NOT NULL OR identity_nickname_excepts(r.tool_version))
ORDER BY e.expires_on, e.ticket, e.account_id NULLS LAST, e.nickname NULLS LAST
