-- "As of date D" queries. D is a UTC calendar day; "as of D" means at the end of that day,
-- i.e. everything observed by complete runs that started before D + 1 day (00:00 UTC).
--   SELECT * FROM member_state_as_of(DATE '2026-03-31') WHERE workspace = 'acme';
--   SELECT * FROM findings_as_of(DATE '2026-03-31') WHERE open_as_of;
-- Both take a DATE (or text 'YYYY-MM-DD') and do not depend on the session TimeZone.

CREATE OR REPLACE MACRO as_of_cutoff(d) AS
    timezone('UTC', CAST(CAST(d AS DATE) + 1 AS TIMESTAMP));

-- The interval of member_state_history that was current at the end of day D.
CREATE OR REPLACE MACRO member_state_as_of(d) AS TABLE
    SELECT h.*
    FROM member_state_history AS h
    WHERE h.valid_from < as_of_cutoff(d)
      AND (h.valid_to IS NULL OR h.valid_to >= as_of_cutoff(d));

-- Findings first seen by the end of day D, with their state as it was known then.
-- (severity and last_seen describe the whole finding, which may extend past D.)
CREATE OR REPLACE MACRO findings_as_of(d) AS TABLE
    SELECT
        f.*,
        f.resolved_at IS NULL OR f.resolved_at >= as_of_cutoff(d) AS open_as_of,
        CASE WHEN f.resolved_at < as_of_cutoff(d) THEN f.resolved_at END AS resolved_at_as_of,
        CASE WHEN f.resolved_at < as_of_cutoff(d) THEN f.resolved_at > f.due_at
             ELSE as_of_cutoff(d) > f.due_at END AS overdue_as_of
    FROM findings AS f
    WHERE f.first_seen < as_of_cutoff(d);
