-- Exceptions of the policy stored with a run, for its workspace and not expired on its UTC
-- day, that cover nobody: they name a nickname and no account_id, in a run stored by bb2sv
-- 0.4 or later (identity_nickname_excepts).  $run_id
SELECT e.nickname, e.reason, e.approved_by, e.ticket, e.expires_on
FROM policy_exceptions AS e
JOIN collection_runs AS r ON r.run_id = e.run_id
WHERE e.run_id = $run_id
  AND e.workspace = r.workspace
  AND (r.started_at AT TIME ZONE 'UTC')::DATE < e.expires_on
  AND e.account_id IS NULL
  AND NOT identity_nickname_excepts(r.tool_version)
ORDER BY e.expires_on, e.ticket, e.nickname
