-- Per workspace and UTC day (of started_at), from that day's last COMPLETE run (the last to
-- start: an attempt spooled and stored later does not replace a later one).
-- members counts the members IN SCOPE (out_of_scope the others); enabled, disabled and
-- unknown are their Bitbucket 2SV states; basis_* count them by mfa_basis (excepted =
-- basis_exception) and without_basis the violations.
-- compliance_pct = (members - without_basis) / members * 100, and 100 when members = 0.
-- directory_status: how that run read the organization directory (NULL: not configured);
-- in_directory: members in scope whom the directory lists.
-- source_changed: that run read the Bitbucket API at another base URL than the workspace's
-- previous complete run (complete_runs.source_changed): evidence from somewhere else.
CREATE OR REPLACE VIEW daily_compliance AS
WITH day_runs AS (
    SELECT
        workspace,
        CAST(timezone('UTC', started_at) AS DATE) AS day,
        arg_max(run_id, [epoch_us(started_at), seq]) AS run_id,
        max(started_at) AS started_at,
        arg_max_null(directory_status, [epoch_us(started_at), seq]) AS directory_status
    FROM collection_runs
    WHERE status = 'complete'
    GROUP BY ALL
),
counts AS (
    SELECT
        run_id,
        count(*) FILTER (WHERE in_scope) AS members,
        count(*) FILTER (WHERE in_scope AND two_step_state = 'enabled') AS enabled,
        count(*) FILTER (WHERE in_scope AND two_step_state = 'disabled') AS disabled,
        count(*) FILTER (WHERE in_scope AND two_step_state = 'unknown') AS unknown,
        count(*) FILTER (WHERE excepted) AS excepted,
        count(*) FILTER (WHERE NOT in_scope) AS out_of_scope,
        count(*) FILTER (WHERE mfa_basis = 'bitbucket_2sv') AS basis_bitbucket_2sv,
        count(*) FILTER (WHERE mfa_basis = 'atlassian_2sv') AS basis_atlassian_2sv,
        count(*) FILTER (WHERE mfa_basis = 'idp_sso') AS basis_idp_sso,
        count(*) FILTER (WHERE in_scope AND mfa_basis IS NULL) AS without_basis,
        count(*) FILTER (WHERE in_scope AND in_directory) AS in_directory
    FROM complete_run_members
    WHERE run_id IN (SELECT run_id FROM day_runs)
    GROUP BY run_id
)
SELECT
    d.day, d.workspace, d.run_id, d.started_at,
    coalesce(c.members, 0) AS members,
    coalesce(c.enabled, 0) AS enabled,
    coalesce(c.disabled, 0) AS disabled,
    coalesce(c.unknown, 0) AS unknown,
    coalesce(c.excepted, 0) AS excepted,
    CASE WHEN coalesce(c.members, 0) = 0 THEN 100.0
         ELSE (c.members - c.without_basis) * 100.0 / c.members END AS compliance_pct,
    coalesce(c.out_of_scope, 0) AS out_of_scope,
    coalesce(c.basis_bitbucket_2sv, 0) AS basis_bitbucket_2sv,
    coalesce(c.basis_atlassian_2sv, 0) AS basis_atlassian_2sv,
    coalesce(c.basis_idp_sso, 0) AS basis_idp_sso,
    coalesce(c.excepted, 0) AS basis_exception,
    coalesce(c.without_basis, 0) AS without_basis,
    d.directory_status,
    coalesce(c.in_directory, 0) AS in_directory,
    r.source_changed
FROM day_runs AS d
LEFT JOIN counts AS c ON c.run_id = d.run_id
JOIN complete_runs AS r ON r.run_id = d.run_id;
