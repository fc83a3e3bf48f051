-- Every UTC day of the window with that day's compliance from the evidence view
-- daily_compliance (last complete run of the day); days without one have no run_id.
-- accepted_factors and sso_attestation: the identity rules of that run's policy.
-- $workspace $start $end
WITH days AS (
    SELECT CAST(unnest(generate_series(CAST($start AS DATE), CAST($end AS DATE),
                                       INTERVAL 1 DAY)) AS DATE) AS day
)
SELECT d.day, c.run_id, c.members, c.enabled, c.disabled, c.unknown, c.excepted,
       c.compliance_pct, c.out_of_scope, c.basis_bitbucket_2sv, c.basis_atlassian_2sv,
       c.basis_idp_sso, c.basis_exception, c.without_basis, c.directory_status,
       c.in_directory, p.accepted_factors, p.sso_attestation
FROM days AS d
LEFT JOIN daily_compliance AS c ON c.day = d.day AND c.workspace = $workspace
LEFT JOIN run_policies AS p ON p.run_id = c.run_id
ORDER BY d.day
