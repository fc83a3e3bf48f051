-- Helper view (not one of the audited names, but stable): every member observed by a
-- COMPLETE run, with the run's UTC day, the policy in force for that run, and whether an
-- exception of that policy covers the member on that day. Incomplete and failed runs never
-- appear here, so nothing built on this view can claim compliance from a partial population.
--
-- An exception covers a non-enabled member when workspace matches, account_id or nickname
-- matches, and the run's UTC day is strictly before expires_on.
CREATE OR REPLACE VIEW complete_run_members AS
WITH runs AS (
    SELECT
        run_id, seq, workspace, started_at,
        CAST(timezone('UTC', started_at) AS DATE) AS run_day
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
scored AS (
    SELECT
        r.run_id, r.seq, r.workspace, r.started_at, r.run_day,
        o.observed_at,
        coalesce(o.account_id, o.uuid) AS member_key,
        o.account_id, o.uuid, o.nickname, o.display_name, o.permission,
        o.has_2fa_enabled, o.two_step_state,
        o.two_step_state <> 'enabled'
            AND (coalesce(a.expires_on > r.run_day, false)
                 OR coalesce(n.expires_on > r.run_day, false)) AS excepted,
        CASE WHEN o.two_step_state <> 'enabled' THEN
            CASE WHEN a.expires_on > r.run_day THEN a.ticket
                 WHEN n.expires_on > r.run_day THEN n.ticket END
        END AS exception_ticket,
        p.grace_days, p.sla_days,
        p.severity_owner, p.severity_member, p.severity_unknown
    FROM runs AS r
    JOIN member_2sv_observations AS o ON o.run_id = r.run_id
    LEFT JOIN run_policies AS p ON p.run_id = r.run_id
    LEFT JOIN by_account AS a
        ON a.run_id = o.run_id AND a.workspace = o.workspace AND a.account_id = o.account_id
    LEFT JOIN by_nickname AS n
        ON n.run_id = o.run_id AND n.workspace = o.workspace AND n.nickname = o.nickname
)
SELECT
    *,
    two_step_state = 'enabled' OR excepted AS compliant,
    -- 3 owner without 2SV, 2 member with 2SV disabled, 1 state unknown, 0 compliant
    CASE
        WHEN two_step_state = 'enabled' OR excepted THEN 0
        WHEN permission = 'owner' THEN 3
        WHEN two_step_state = 'disabled' THEN 2
        ELSE 1
    END AS risk_rank
FROM scored;
