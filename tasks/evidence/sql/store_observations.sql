-- A new run's observations (registered as _bb2sv_obs, the table's old columns) stored as
-- identities and states (migration 0007), inside the run's transaction.
-- The observations are matched to identities in one place, _bb2sv_obs_ids: each
-- observation's identity id, by position in the run, and whether the run stores that
-- identity (at its first sighting). Both inserts then read it beside the observations
-- (POSITIONAL JOIN), so the matching runs once, and nothing is sorted but two integers.

-- The workspace's stored identities, one id each (the lowest, should an edited file hold
-- the same identity twice).
CREATE OR REPLACE TEMP TABLE _bb2sv_known AS
SELECT min(id) AS id, workspace, account_id, uuid, nickname, display_name, account_type, kind
FROM member_identities
WHERE workspace IN (SELECT workspace FROM _bb2sv_obs)
GROUP BY ALL;

-- An identity not stored yet gets the next id, in the order the run first saw it.
CREATE OR REPLACE TEMP TABLE _bb2sv_obs_ids AS
WITH observed AS (
    SELECT row_number() OVER () AS position, workspace, account_id, uuid, nickname,
           display_name, account_type, kind
    FROM _bb2sv_obs
), matched AS (
    SELECT o.*, k.id
    FROM observed AS o
    LEFT JOIN _bb2sv_known AS k
      ON (k.workspace, k.account_id, k.uuid, k.nickname, k.display_name, k.account_type, k.kind)
         IS NOT DISTINCT FROM
         (o.workspace, o.account_id, o.uuid, o.nickname, o.display_name, o.account_type, o.kind)
), new AS (
    SELECT *, (SELECT coalesce(max(id), 0) FROM member_identities)
              + row_number() OVER (ORDER BY first) AS id
    FROM (
        SELECT workspace, account_id, uuid, nickname, display_name, account_type, kind,
               min(position) AS first
        FROM matched
        WHERE id IS NULL
        GROUP BY ALL
    )
)
SELECT m.position, coalesce(m.id, n.id) AS id, m.position = n.first AS first_sighting
FROM matched AS m
LEFT JOIN new AS n
  ON (n.workspace, n.account_id, n.uuid, n.nickname, n.display_name, n.account_type, n.kind)
     IS NOT DISTINCT FROM
     (m.workspace, m.account_id, m.uuid, m.nickname, m.display_name, m.account_type, m.kind)
ORDER BY m.position;

-- 1. The identities not stored yet, at their first sightings: in position order, which is
--    the order of their new ids.
INSERT INTO member_identities
SELECT i.id, o.workspace, o.account_id, o.uuid, o.nickname, o.display_name, o.account_type,
       o.kind
FROM _bb2sv_obs AS o POSITIONAL JOIN _bb2sv_obs_ids AS i
WHERE i.first_sighting;

-- 2. One state per observation, in position order, pointing at its identity.
INSERT INTO member_run_states
SELECT o.run_id, i.id, o.observed_at, o.permission, o.has_2fa_enabled, o.two_step_state,
       o.in_directory, o.directory_account_status, o.directory_claim_status,
       o.directory_mfa_enabled, o.directory_email_domain
FROM _bb2sv_obs AS o POSITIONAL JOIN _bb2sv_obs_ids AS i;

DROP TABLE _bb2sv_obs_ids;
DROP TABLE _bb2sv_known;
