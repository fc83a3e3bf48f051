-- Intervals per member from COMPLETE runs: a new interval starts when the member's
-- two_step_state or permission changes, or when the member comes back after missing a run.
-- valid_from = started_at of the first run of the interval; valid_to = started_at of the
-- next complete run where the member had another state or was absent (NULL = current).
CREATE OR REPLACE VIEW member_state_history AS
WITH obs AS (
    SELECT m.workspace, m.member_key, m.account_id, m.uuid, m.nickname, m.display_name,
           m.permission, m.two_step_state, m.run_id, m.started_at, r.run_no
    FROM complete_run_members AS m
    JOIN complete_runs AS r ON r.run_id = m.run_id
),
marked AS (
    SELECT *,
        CASE WHEN lag(run_no) OVER w = run_no - 1
              AND lag(two_step_state) OVER w = two_step_state
              AND lag(permission) OVER w IS NOT DISTINCT FROM permission
             THEN 0 ELSE 1 END AS starts_interval
    FROM obs
    WINDOW w AS (PARTITION BY workspace, member_key ORDER BY run_no)
),
numbered AS (
    SELECT *,
        sum(starts_interval) OVER (PARTITION BY workspace, member_key ORDER BY run_no
                                   ROWS UNBOUNDED PRECEDING) AS interval_no
    FROM marked
),
intervals AS (
    SELECT
        workspace, member_key, interval_no,
        arg_max(account_id, run_no) AS account_id,
        arg_max(uuid, run_no) AS uuid,
        arg_max(nickname, run_no) AS nickname,
        arg_max(display_name, run_no) AS display_name,
        any_value(two_step_state) AS two_step_state,
        any_value(permission) AS permission,
        min(started_at) AS valid_from,
        max(started_at) AS last_seen,
        arg_min(run_id, run_no) AS first_run_id,
        arg_max(run_id, run_no) AS last_run_id,
        count(*) AS runs
    FROM numbered
    GROUP BY workspace, member_key, interval_no
)
SELECT
    i.workspace, i.account_id, i.member_key, i.uuid, i.nickname, i.display_name,
    i.two_step_state, i.permission,
    i.valid_from, r.next_started_at AS valid_to,
    i.last_seen, i.first_run_id, i.last_run_id, i.runs
FROM intervals AS i
JOIN complete_runs AS r ON r.run_id = i.last_run_id;
