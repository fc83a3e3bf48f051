-- CIS-style account counts of one complete run (evidence view complete_run_members): the
-- accounts IN SCOPE, with or without an accepted second factor (any mfa_basis but an
-- exception), and the accounts out of scope.  $run_id
SELECT
    count(*) FILTER (WHERE in_scope) AS accounts,
    count(*) FILTER (WHERE in_scope AND mfa_basis IS NOT NULL AND NOT excepted) AS with_2sv,
    count(*) FILTER (WHERE in_scope AND (mfa_basis IS NULL OR excepted)) AS without_2sv,
    count(*) FILTER (WHERE in_scope AND (mfa_basis IS NULL OR excepted)
                     AND two_step_state = 'unknown') AS unknown,
    count(*) FILTER (WHERE in_scope AND permission = 'owner'
                     AND (mfa_basis IS NULL OR excepted)) AS owners_without_2sv,
    count(*) FILTER (WHERE excepted) AS excepted,
    count(*) FILTER (WHERE NOT in_scope) AS out_of_scope
FROM complete_run_members
WHERE run_id = $run_id
