-- The complete run of the same workspace just before this one (chain order breaks ties).
-- $run_id
SELECT prev.run_id
FROM collection_runs AS cur
JOIN collection_runs AS prev
  ON prev.workspace = cur.workspace
 AND prev.status = 'complete'
 AND (prev.started_at < cur.started_at
      OR (prev.started_at = cur.started_at AND prev.seq < cur.seq))
WHERE cur.run_id = $run_id
ORDER BY prev.started_at DESC, prev.seq DESC
LIMIT 1
