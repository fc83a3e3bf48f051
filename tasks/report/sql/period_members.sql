-- How each member passed over the window: every member of the window's daily runs (the
-- last complete run of each UTC day, as daily_compliance counts them), with the days on
-- each basis, the days without one while in scope, the days out of scope, and the state at
-- the member's last day in the window.  $workspace $start $end
WITH day_runs AS (
    SELECT run_id, day
    FROM daily_compliance
    WHERE workspace = $workspace AND day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
)
SELECT
    m.member_key,
    arg_max_null(m.account_id, [epoch_us(m.started_at), m.seq]) AS account_id,
    arg_max_null(m.nickname, [epoch_us(m.started_at), m.seq]) AS nickname,
    arg_max_null(m.display_name, [epoch_us(m.started_at), m.seq]) AS display_name,
    arg_max_null(m.permission, [epoch_us(m.started_at), m.seq]) AS permission,
    arg_max_null(m.account_type, [epoch_us(m.started_at), m.seq]) AS account_type,
    max(d.day) AS last_day,
    arg_max_null(m.in_scope, [epoch_us(m.started_at), m.seq]) AS in_scope_last_day,
    arg_max_null(m.mfa_basis, [epoch_us(m.started_at), m.seq]) AS basis_last_day,
    arg_max_null(m.excluded_by, [epoch_us(m.started_at), m.seq]) AS excluded_by_last_day,
    count(*) AS days_seen,
    count(*) FILTER (WHERE m.mfa_basis = 'bitbucket_2sv') AS days_bitbucket_2sv,
    count(*) FILTER (WHERE m.mfa_basis = 'atlassian_2sv') AS days_atlassian_2sv,
    count(*) FILTER (WHERE m.mfa_basis = 'idp_sso') AS days_idp_sso,
    count(*) FILTER (WHERE m.mfa_basis = 'exception') AS days_exception,
    count(*) FILTER (WHERE m.in_scope AND m.mfa_basis IS NULL) AS days_without_basis,
    count(*) FILTER (WHERE NOT m.in_scope) AS days_out_of_scope
FROM complete_run_members AS m
JOIN day_runs AS d ON d.run_id = m.run_id
GROUP BY m.member_key
ORDER BY days_without_basis DESC, m.member_key
