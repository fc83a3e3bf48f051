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
-- Islands: along a member's runs with one (two_step_state, permission), run_no minus the
-- row number is constant exactly while the runs are consecutive (one window, one sort).
numbered AS (
    SELECT *,
        run_no - row_number() OVER (PARTITION BY workspace, member_key, two_step_state,
                                                 permission
                                    ORDER BY run_no) AS interval_no
    FROM obs
),
intervals AS (
    SELECT
        workspace, member_key, interval_no,
        arg_max(account_id, run_no) AS account_id,
        arg_max(uuid, run_no) AS uuid,
        arg_max(nickname, run_no) AS nickname,
        arg_max(display_name, run_no) AS display_name,
        two_step_state,
        permission,
        min(started_at) AS valid_from,
        max(started_at) AS last_seen,
        arg_min(run_id, run_no) AS first_run_id,
        arg_max(run_id, run_no) AS last_run_id,
        count(*) AS runs
    FROM numbered
    GROUP BY workspace, member_key, two_step_state, permission, interval_no
)
SELECT
    i.workspace, i.account_id, i.member_key, i.uuid, i.nickname, i.display_name,
    i.two_step_state, i.permission,
    i.valid_from, r.next_started_at AS valid_to,
    i.last_seen, i.first_run_id, i.last_run_id, i.runs
FROM intervals AS i
JOIN complete_runs AS r ON r.run_id = i.last_run_id;
