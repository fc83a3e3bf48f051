-- One row per member per run, as the table of that name held before migration 0007: what
-- the run saw (member_run_states) with who it was (member_identities). A state whose
-- identity row is gone still shows, with the identity columns NULL (verify reports it).
CREATE OR REPLACE VIEW member_2sv_observations AS
SELECT
    s.run_id, i.workspace, s.observed_at, i.account_id, i.uuid, i.nickname, i.display_name,
    s.permission, s.has_2fa_enabled, s.two_step_state, i.account_type, i.kind,
    s.in_directory, s.directory_account_status, s.directory_claim_status,
    s.directory_mfa_enabled, s.directory_email_domain
FROM member_run_states AS s
LEFT JOIN member_identities AS i ON i.id = s.member_id;
