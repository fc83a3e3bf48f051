-- One row per period an IN-SCOPE member had no mfa_basis (no accepted second factor holds
-- and no exception covers the member), across consecutive COMPLETE runs of the workspace.
--   severity     worst seen in the period: owner -> policy severity_owner (critical),
--                known to lack a factor -> severity_member (high), 2SV state unknown ->
--                severity_unknown (medium)
--   first_seen / last_seen   started_at of the first / last run that saw the violation
--   resolved_at  started_at of the first later complete run where the member was compliant,
--                out of scope or absent (resolution = fixed | excepted | out_of_scope | left);
--                NULL while open
--   due_at       first_seen + sla_days of the policy in force at first detection (pinned);
--                within grace_days of the member's first observation it is
--                max(first_observed + grace_days, first_seen + sla_days)
--   sla_breached resolved after due_at, or still open and the workspace's last complete run
--                started after due_at
-- obs is read three times; NOT MATERIALIZED lets each read stream, and lets a filter on
-- the members reach the scan, where a materialized obs held every observation of the
-- history at once (a year of 10,000 members: 1.8 GB for a daily report's findings).
-- bb2sv's readers keep it (their catalog, reader_catalog); the copy stored in an evidence
-- file loses it (the file is written for DuckDB 1.4, connection.py), so plain DuckDB
-- still materialises obs there, and the stored text is the same as before.
CREATE OR REPLACE VIEW findings AS
WITH obs AS NOT MATERIALIZED (
    SELECT m.*, r.run_no
    FROM complete_run_members AS m
    JOIN complete_runs AS r ON r.run_id = m.run_id
),
first_observed AS (
    SELECT workspace, member_key, min(started_at) AS first_observed
    FROM obs
    GROUP BY workspace, member_key
),
violations AS (
    SELECT *,
        CASE WHEN lag(run_no) OVER (PARTITION BY workspace, member_key ORDER BY run_no)
                  = run_no - 1
             THEN 0 ELSE 1 END AS starts_finding
    FROM obs
    WHERE in_scope AND NOT compliant
),
numbered AS (
    SELECT *,
        sum(starts_finding) OVER (PARTITION BY workspace, member_key ORDER BY run_no
                                  ROWS UNBOUNDED PRECEDING) AS finding_no
    FROM violations
),
grouped AS (
    SELECT
        workspace, member_key, finding_no,
        arg_max(account_id, run_no) AS account_id,
        arg_max(uuid, run_no) AS uuid,
        arg_max(nickname, run_no) AS nickname,
        arg_max(display_name, run_no) AS display_name,
        arg_max_null(permission, run_no) AS permission,
        arg_max(two_step_state, run_no) AS two_step_state,
        max(risk_rank) AS worst_rank,
        min(started_at) AS first_seen,
        max(started_at) AS last_seen,
        min(run_no) AS first_run_no,
        max(run_no) AS last_run_no,
        arg_min(run_id, run_no) AS first_run_id,
        arg_max(run_id, run_no) AS last_run_id,
        -- the policy in force at first detection: its first run's (of those that stored one)
        arg_min(struct_pack(grace_days, sla_days, severity_owner, severity_member,
                            severity_unknown), run_no)
            FILTER (WHERE grace_days IS NOT NULL) AS policy,
        count(*) AS runs
    FROM numbered
    GROUP BY workspace, member_key, finding_no
),
latest AS (
    SELECT workspace, max(started_at) AS last_complete_at
    FROM complete_runs
    GROUP BY workspace
),
timed AS (
    SELECT
        g.*,
        f.first_observed,
        nxt.run_id AS resolved_run_id,
        nxt.started_at AS resolved_at,
        CASE WHEN nxt.run_id IS NULL THEN NULL
             WHEN res.member_key IS NULL THEN 'left'
             WHEN NOT res.in_scope THEN 'out_of_scope'
             WHEN res.excepted THEN 'excepted'
             ELSE 'fixed' END AS resolution,
        CASE WHEN g.first_seen < f.first_observed + to_days(g.policy.grace_days)
             THEN greatest(f.first_observed + to_days(g.policy.grace_days),
                           g.first_seen + to_days(g.policy.sla_days))
             ELSE g.first_seen + to_days(g.policy.sla_days) END AS due_at,
        l.last_complete_at
    FROM grouped AS g
    JOIN first_observed AS f ON f.workspace = g.workspace AND f.member_key = g.member_key
    JOIN latest AS l ON l.workspace = g.workspace
    LEFT JOIN complete_runs AS nxt
        ON nxt.workspace = g.workspace AND nxt.run_no = g.last_run_no + 1
    LEFT JOIN obs AS res ON res.run_id = nxt.run_id AND res.member_key = g.member_key
)
SELECT
    workspace || '/' || member_key || '/' || first_run_id AS finding_id,
    workspace, member_key, account_id, uuid, nickname, display_name, permission,
    two_step_state,
    CASE worst_rank WHEN 3 THEN policy.severity_owner
                    WHEN 2 THEN policy.severity_member
                    ELSE policy.severity_unknown END AS severity,
    first_seen, last_seen, resolved_at, resolution, due_at,
    CASE WHEN resolved_at IS NOT NULL THEN resolved_at > due_at
         ELSE last_complete_at > due_at END AS sla_breached,
    resolved_at IS NULL AS is_open,
    first_observed, policy.grace_days AS grace_days, policy.sla_days AS sla_days,
    first_run_id, last_run_id, resolved_run_id, runs
FROM timed;
