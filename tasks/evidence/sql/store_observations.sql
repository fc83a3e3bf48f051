-- A new run's observations (registered as _bb2sv_obs, the table's old columns) stored as
-- identities and states (migration 0007), inside the run's transaction.
-- 1. Identities not stored yet get the next ids, in the order the run saw them.
INSERT INTO member_identities
WITH seen AS (
    SELECT workspace, account_id, uuid, nickname, display_name, account_type, kind,
           min(position) AS first
    FROM (SELECT row_number() OVER () AS position, * FROM _bb2sv_obs)
    GROUP BY ALL
),
new AS (
    SELECT seen.* FROM seen
    ANTI JOIN member_identities AS i
      ON  i.workspace = seen.workspace
      AND i.account_id IS NOT DISTINCT FROM seen.account_id
      AND i.uuid IS NOT DISTINCT FROM seen.uuid
      AND i.nickname IS NOT DISTINCT FROM seen.nickname
      AND i.display_name IS NOT DISTINCT FROM seen.display_name
      AND i.account_type IS NOT DISTINCT FROM seen.account_type
      AND i.kind IS NOT DISTINCT FROM seen.kind
)
SELECT (SELECT coalesce(max(id), 0) FROM member_identities) + row_number() OVER (ORDER BY first),
       workspace, account_id, uuid, nickname, display_name, account_type, kind
FROM new
ORDER BY first;

-- 2. One state per observation, pointing at its identity (the lowest id, should an edited
-- file hold the same identity twice).
INSERT INTO member_run_states
SELECT o.run_id, i.id, o.observed_at, o.permission, o.has_2fa_enabled, o.two_step_state,
       o.in_directory, o.directory_account_status, o.directory_claim_status,
       o.directory_mfa_enabled, o.directory_email_domain
FROM (SELECT row_number() OVER () AS position, * FROM _bb2sv_obs) AS o
JOIN (
    SELECT min(id) AS id, workspace, account_id, uuid, nickname, display_name, account_type, kind
    FROM member_identities
    WHERE workspace IN (SELECT workspace FROM _bb2sv_obs)
    GROUP BY ALL
) AS i
  ON  i.workspace = o.workspace
  AND i.account_id IS NOT DISTINCT FROM o.account_id
  AND i.uuid IS NOT DISTINCT FROM o.uuid
  AND i.nickname IS NOT DISTINCT FROM o.nickname
  AND i.display_name IS NOT DISTINCT FROM o.display_name
  AND i.account_type IS NOT DISTINCT FROM o.account_type
  AND i.kind IS NOT DISTINCT FROM o.kind
ORDER BY o.position;
