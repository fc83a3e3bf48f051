-- Each workspace's members as seen by its last COMPLETE run (the last to start): in_scope and the rule that
-- excluded a member (excluded_by), and mfa_basis, how an in-scope member passes (NULL: it
-- does not; compliant is NULL for a member out of scope).
CREATE OR REPLACE VIEW latest_member_state AS
WITH last_run AS (
    SELECT workspace, arg_max(run_id, [epoch_us(started_at), seq]) AS run_id
    FROM collection_runs
    WHERE status = 'complete'
    GROUP BY workspace
)
SELECT
    m.workspace, m.run_id, m.started_at AS run_started_at, m.observed_at,
    m.member_key, m.account_id, m.uuid, m.nickname, m.display_name, m.permission,
    m.has_2fa_enabled, m.two_step_state, m.excepted, m.exception_ticket, m.compliant,
    m.account_type, m.kind, m.in_scope, m.excluded_by, m.mfa_basis
FROM complete_run_members AS m
JOIN last_run AS l ON l.run_id = m.run_id;
