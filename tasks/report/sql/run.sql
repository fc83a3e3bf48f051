-- One collection run with the policy stored for it (identity rules included) and its
-- signature, if it was signed.  $run_id
SELECT r.run_id, r.workspace, r.source, r.started_at, r.finished_at, r.status, r.member_count,
       r.request_count, r.tool_version, r.prefect_flow_run_id, r.raw_sha256, r.prev_run_hash,
       r.run_hash, r.error, r.emulated,
       r.directory_status, r.directory_error, r.directory_source,
       coalesce(p.policy_sha256, r.policy_sha256) AS policy_sha256,
       p.grace_days, p.sla_days, p.source_path,
       coalesce(p.accepted_factors, ['bitbucket_2sv']) AS accepted_factors,
       coalesce(p.exclude_account_types, []) AS exclude_account_types,
       p.sso_email_domains, p.sso_identity_provider, p.sso_attestation,
       s.key_id AS signing_key_id, s.signature
FROM collection_runs AS r
LEFT JOIN run_policies AS p USING (run_id)
LEFT JOIN run_signatures AS s USING (run_id)
WHERE r.run_id = $run_id
