-- Helper view: complete runs numbered per workspace (run_no 1, 2, …) in the order they
-- started (an attempt spooled and stored later keeps its place), with the next complete
-- run of the same workspace. History and findings step from one complete run to the next,
-- so a member missing from run n+1 has left (or was not seen) at that run.
-- source_changed: the run read the Bitbucket API at another base URL (source) than the
-- workspace's previous complete run did; false for its first complete run.
CREATE OR REPLACE VIEW complete_runs AS
SELECT
    run_id, seq, workspace, started_at,
    row_number() OVER w AS run_no,
    lead(run_id) OVER w AS next_run_id,
    lead(started_at) OVER w AS next_started_at,
    coalesce(source <> lag(source) OVER w, false) AS source_changed
FROM collection_runs
WHERE status = 'complete'
WINDOW w AS (PARTITION BY workspace ORDER BY started_at, seq);
