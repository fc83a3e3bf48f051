-- Every member observed by one run (of any status), classified under the policy stored with
-- that run. Mirrors the evidence view complete_run_members (same exception and severity
-- rules) so a daily report of a complete run agrees with daily_compliance, and also works
-- for incomplete runs, which that view leaves out on purpose.  $run_id
WITH run AS (
    SELECT r.run_id, r.workspace, r.started_at,
           CAST(timezone('UTC', r.started_at) AS DATE) AS run_day,
           p.severity_owner, p.severity_member, p.severity_unknown
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
scored AS (
    SELECT
        o.account_id, o.uuid, o.nickname, o.display_name, o.permission, o.has_2fa_enabled,
        o.two_step_state, o.observed_at,
        CASE WHEN o.two_step_state <> 'enabled' THEN coalesce(a.ticket, n.ticket) END
            AS exception_ticket,
        CASE WHEN o.two_step_state <> 'enabled' THEN coalesce(a.expires_on, n.expires_on) END
            AS exception_expires_on,
        CASE
            WHEN o.two_step_state = 'enabled' THEN NULL
            WHEN o.permission = 'owner' THEN run.severity_owner
            WHEN o.two_step_state = 'disabled' THEN run.severity_member
            ELSE run.severity_unknown
        END AS severity
    FROM member_2sv_observations AS o
    JOIN run ON o.run_id = run.run_id
    LEFT JOIN by_account AS a ON a.account_id = o.account_id
    LEFT JOIN by_nickname AS n ON n.nickname = o.nickname
)
SELECT
    coalesce(account_id, uuid) AS member_key, account_id, uuid, nickname, display_name,
    permission, has_2fa_enabled, two_step_state,
    CASE
        WHEN two_step_state = 'enabled' THEN 'compliant'
        WHEN exception_ticket IS NOT NULL THEN 'excepted'
        ELSE 'non-compliant'
    END AS assessment,
    CASE WHEN exception_ticket IS NULL THEN severity END AS severity,
    exception_ticket, exception_expires_on, observed_at
FROM scored
ORDER BY member_key
