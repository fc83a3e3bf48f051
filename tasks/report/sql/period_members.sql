-- How each member passed over the window: every member of the window's daily runs (the
-- last complete run of each UTC day, as daily_compliance counts them), with the days on
-- each basis, the days without one while in scope, the days out of scope, and the state at
-- the member's last day in the window (by start: one run a day, so no two tie; a run stored
-- late keeps its day). The last day's row is taken whole, as one struct: its NULLs (no
-- basis that day) are that day's, where arg_max of each column would skip them.
-- $workspace $start $end
WITH day_runs AS (
    SELECT run_id, day
    FROM daily_compliance
    WHERE workspace = $workspace AND day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
),
members AS (
    SELECT
        m.member_key,
        arg_max(
            struct_pack(
                account_id := m.account_id, nickname := m.nickname,
                display_name := m.display_name, permission := m.permission,
                account_type := m.account_type, in_scope := m.in_scope,
                mfa_basis := m.mfa_basis, excluded_by := m.excluded_by
            ),
            m.started_at
        ) AS last,
        max(d.day) AS last_day,
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
)
SELECT
    member_key, last.account_id, last.nickname, last.display_name, last.permission,
    last.account_type, last_day, last.in_scope AS in_scope_last_day,
    last.mfa_basis AS basis_last_day, last.excluded_by AS excluded_by_last_day,
    days_seen, days_bitbucket_2sv, days_atlassian_2sv, days_idp_sso, days_exception,
    days_without_basis, days_out_of_scope
FROM members
ORDER BY days_without_basis DESC, member_key
