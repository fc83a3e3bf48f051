-- The SSO attestations relied on during the window: each distinct sso block of the policies
-- of the window's daily runs (daily_compliance), with the days it was in force.
-- $workspace $start $end
SELECT p.sso_identity_provider AS identity_provider,
       array_to_string(list_sort(p.sso_email_domains), ', ') AS email_domains,
       p.sso_attestation AS attestation,
       min(c.day) AS first_day, max(c.day) AS last_day, count(*) AS days
FROM daily_compliance AS c
JOIN run_policies AS p ON p.run_id = c.run_id
WHERE c.workspace = $workspace
  AND c.day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
  AND p.sso_attestation IS NOT NULL
GROUP BY ALL
ORDER BY first_day, identity_provider, attestation
