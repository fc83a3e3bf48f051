-- Every member observed by one run (of any status), classified under the policy stored with
-- that run. Mirrors the evidence view complete_run_members (same exception, identity and
-- severity rules: the identity macros of 07_identity_rules.sql) so a daily report of a
-- complete run agrees with daily_compliance, and also works for incomplete runs, which that
-- view leaves out on purpose.  $run_id
WITH run AS (
    SELECT r.run_id, r.workspace, r.started_at, r.directory_status,
           CAST(timezone('UTC', r.started_at) AS DATE) AS run_day,
           p.severity_owner, p.severity_member, p.severity_unknown,
           coalesce(p.accepted_factors, ['bitbucket_2sv']) AS accepted_factors,
           p.exclude_account_types, p.sso_email_domains,
           identity_nickname_excepts(r.tool_version) AS nickname_excepts
    FROM collection_runs AS r
    LEFT JOIN run_policies AS p USING (run_id)
    WHERE r.run_id = $run_id
),
in_force AS (
    SELECT e.account_id, e.nickname, e.expires_on, e.ticket
    FROM policy_exceptions AS e, run
    WHERE e.run_id = run.run_id AND e.workspace = run.workspace AND run.run_day < e.expires_on
),
by_account AS (
    SELECT account_id, arg_max(ticket, expires_on) AS ticket, max(expires_on) AS expires_on
    FROM in_force WHERE account_id IS NOT NULL GROUP BY account_id
),
by_nickname AS (
    SELECT nickname, arg_max(ticket, expires_on) AS ticket, max(expires_on) AS expires_on
    FROM in_force WHERE nickname IS NOT NULL GROUP BY nickname
),
judged AS (
    SELECT
        o.account_id, o.uuid, o.nickname, o.display_name, o.permission, o.has_2fa_enabled,
        o.two_step_state, o.observed_at, o.account_type, o.kind, o.in_directory,
        coalesce(a.ticket, n.ticket) AS covering_ticket,
        coalesce(a.expires_on, n.expires_on) AS covering_expires_on,
        identity_in_scope(o.account_type, run.exclude_account_types) AS in_scope,
        identity_excluded_by(o.account_type, run.exclude_account_types) AS excluded_by,
        identity_factor(run.accepted_factors, o.two_step_state, run.directory_status,
                        o.directory_account_status, o.directory_claim_status,
                        o.directory_mfa_enabled, o.directory_email_domain,
                        run.sso_email_domains) AS factor,
        run.severity_owner, run.severity_member, run.severity_unknown
    FROM member_2sv_observations AS o
    JOIN run ON o.run_id = run.run_id
    LEFT JOIN by_account AS a ON a.account_id = o.account_id
    LEFT JOIN by_nickname AS n ON n.nickname = o.nickname AND run.nickname_excepts
),
based AS (
    SELECT *, identity_basis(in_scope, factor, covering_ticket IS NOT NULL) AS mfa_basis
    FROM judged
)
SELECT
    coalesce(account_id, uuid) AS member_key, account_id, uuid, nickname, display_name,
    permission, has_2fa_enabled, two_step_state,
    CASE
        WHEN NOT in_scope THEN 'out of scope'
        WHEN mfa_basis = 'exception' THEN 'excepted'
        WHEN mfa_basis IS NOT NULL THEN 'compliant'
        ELSE 'non-compliant'
    END AS assessment,
    CASE
        WHEN NOT in_scope OR mfa_basis IS NOT NULL THEN NULL
        WHEN permission = 'owner' THEN severity_owner
        WHEN two_step_state = 'unknown' THEN severity_unknown
        ELSE severity_member
    END AS severity,
    CASE WHEN mfa_basis = 'exception' THEN covering_ticket END AS exception_ticket,
    CASE WHEN mfa_basis = 'exception' THEN covering_expires_on END AS exception_expires_on,
    observed_at, account_type, kind, in_scope, excluded_by, mfa_basis, in_directory
FROM based
ORDER BY member_key
