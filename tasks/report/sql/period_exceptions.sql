-- Exceptions of the workspace in force on at least one day of the window, according to the
-- policies stored with the window's runs (one that names only a nickname covers nobody in a
-- run stored by bb2sv 0.4 or later: identity_nickname_excepts).  $workspace $start $end
WITH runs AS (
    SELECT run_id, CAST(timezone('UTC', started_at) AS DATE) AS run_day,
           identity_nickname_excepts(tool_version) AS nickname_excepts
    FROM collection_runs
    WHERE workspace = $workspace
      AND CAST(timezone('UTC', started_at) AS DATE)
          BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
)
SELECT e.account_id, e.nickname, e.reason, e.approved_by, e.ticket, e.expires_on,
       min(r.run_day) AS first_day_in_force, max(r.run_day) AS last_day_in_force
FROM policy_exceptions AS e
JOIN runs AS r ON r.run_id = e.run_id
WHERE e.workspace = $workspace AND r.run_day < e.expires_on
  AND (e.account_id IS NOT NULL OR r.nickname_excepts)
GROUP BY ALL
ORDER BY e.expires_on, e.ticket, e.account_id NULLS LAST, e.nickname NULLS LAST,
         e.reason, e.approved_by
