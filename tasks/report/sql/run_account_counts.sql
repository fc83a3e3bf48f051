-- CIS-style account counts of one complete run (evidence view complete_run_members).  $run_id
SELECT
    count(*) AS accounts,
    count(*) FILTER (WHERE two_step_state = 'enabled') AS with_2sv,
    count(*) FILTER (WHERE two_step_state <> 'enabled') AS without_2sv,
    count(*) FILTER (WHERE two_step_state = 'unknown') AS unknown,
    count(*) FILTER (WHERE permission = 'owner' AND two_step_state <> 'enabled')
        AS owners_without_2sv,
    count(*) FILTER (WHERE excepted) AS excepted
FROM complete_run_members
WHERE run_id = $run_id
