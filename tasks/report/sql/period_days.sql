-- Every UTC day of the window with that day's compliance from the evidence view
-- daily_compliance (last complete run of the day); days without one have no run_id.
-- $workspace $start $end
WITH days AS (
    SELECT CAST(unnest(generate_series(CAST($start AS DATE), CAST($end AS DATE),
                                       INTERVAL 1 DAY)) AS DATE) AS day
)
SELECT d.day, c.run_id, c.members, c.enabled, c.disabled, c.unknown, c.excepted,
       c.compliance_pct
FROM days AS d
LEFT JOIN daily_compliance AS c ON c.day = d.day AND c.workspace = $workspace
ORDER BY d.day
