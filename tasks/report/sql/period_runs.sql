-- Every run of the workspace (any status) that started on a UTC day of the window.
-- $workspace $start $end
-- signing_key_id: the key that signed the run (run_signatures), NULL when unsigned.
SELECT run_id, seq, started_at, finished_at, status, member_count, request_count, source,
       tool_version, run_hash, prev_run_hash, raw_sha256, policy_sha256, emulated, error,
       prefect_flow_run_id, workspace, s.key_id AS signing_key_id
FROM collection_runs
LEFT JOIN run_signatures AS s USING (run_id)
WHERE workspace = $workspace
  AND CAST(timezone('UTC', started_at) AS DATE) BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
ORDER BY started_at, seq
