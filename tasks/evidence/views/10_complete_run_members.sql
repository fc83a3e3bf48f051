-- Helper view (not one of the audited names, but stable): every member observed by a
-- COMPLETE run, with the run's UTC day, the policy in force for that run, and how that
-- policy judges the member on that day. Incomplete and failed runs never appear here, so
-- nothing built on this view can claim compliance from a partial population.
--
-- Scope and basis follow the identity rules (07_identity_rules.sql): in_scope/excluded_by
-- from the member's account_type, mfa_basis = the first accepted factor that holds
-- (bitbucket_2sv, atlassian_2sv, idp_sso), else 'exception' when an exception covers the
-- member: workspace matches, account_id matches (or, in runs stored before bb2sv 0.4, a
-- nickname: identity_nickname_excepts), and the run's UTC day is strictly before expires_on. compliant is NULL for a member out of scope (never a
-- violation, never counted).
CREATE OR REPLACE VIEW complete_run_members AS
WITH runs AS (
    SELECT
        run_id, seq, workspace, started_at, directory_status,
        CAST(timezone('UTC', started_at) AS DATE) AS run_day,
        identity_nickname_excepts(tool_version) AS nickname_excepts
    FROM collection_runs
    WHERE status = 'complete'
),
by_account AS (
    SELECT run_id, workspace, account_id,
           max(expires_on) AS expires_on, arg_max(ticket, expires_on) AS ticket
    FROM policy_exceptions
    WHERE account_id IS NOT NULL
    GROUP BY ALL
),
by_nickname AS (
    SELECT run_id, workspace, nickname,
           max(expires_on) AS expires_on, arg_max(ticket, expires_on) AS ticket
    FROM policy_exceptions
    WHERE nickname IS NOT NULL
    GROUP BY ALL
),
judged AS (
    SELECT
        r.run_id, r.seq, r.workspace, r.started_at, r.run_day,
        o.observed_at,
        coalesce(o.account_id, o.uuid) AS member_key,
        o.account_id, o.uuid, o.nickname, o.display_name, o.permission,
        o.has_2fa_enabled, o.two_step_state,
        CASE WHEN a.expires_on > r.run_day THEN a.ticket
             WHEN n.expires_on > r.run_day THEN n.ticket END AS covering_ticket,
        identity_in_scope(o.account_type, p.exclude_account_types) AS in_scope,
        identity_excluded_by(o.account_type, p.exclude_account_types) AS excluded_by,
        identity_factor(coalesce(p.accepted_factors, ['bitbucket_2sv']), o.two_step_state,
                        r.directory_status, o.directory_account_status,
                        o.directory_claim_status, o.directory_mfa_enabled,
                        o.directory_email_domain, p.sso_email_domains) AS factor,
        p.grace_days, p.sla_days,
        p.severity_owner, p.severity_member, p.severity_unknown,
        o.account_type, o.kind, r.directory_status, o.in_directory
    FROM runs AS r
    JOIN member_2sv_observations AS o ON o.run_id = r.run_id
    LEFT JOIN run_policies AS p ON p.run_id = r.run_id
    LEFT JOIN by_account AS a
        ON a.run_id = o.run_id AND a.workspace = o.workspace AND a.account_id = o.account_id
    LEFT JOIN by_nickname AS n
        ON n.run_id = o.run_id AND n.workspace = o.workspace AND n.nickname = o.nickname
        AND r.nickname_excepts
),
based AS (
    SELECT *, identity_basis(in_scope, factor, covering_ticket IS NOT NULL) AS mfa_basis
    FROM judged
)
SELECT
    run_id, seq, workspace, started_at, run_day, observed_at, member_key,
    account_id, uuid, nickname, display_name, permission, has_2fa_enabled, two_step_state,
    coalesce(mfa_basis = 'exception', false) AS excepted,
    CASE WHEN mfa_basis = 'exception' THEN covering_ticket END AS exception_ticket,
    grace_days, sla_days, severity_owner, severity_member, severity_unknown,
    CASE WHEN in_scope THEN mfa_basis IS NOT NULL END AS compliant,
    -- 3 owner without a basis, 2 member known to lack one, 1 state unknown, 0 passes or is
    -- out of scope
    CASE
        WHEN NOT in_scope OR mfa_basis IS NOT NULL THEN 0
        WHEN permission = 'owner' THEN 3
        WHEN two_step_state = 'unknown' THEN 1
        ELSE 2
    END AS risk_rank,
    account_type, kind, in_scope, excluded_by, mfa_basis, directory_status, in_directory
FROM based;
