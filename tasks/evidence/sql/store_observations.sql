-- A new run's observations (registered as _bb2sv_obs, the table's old columns) stored as
-- identities and states (migration 0007), inside the run's transaction.
-- _bb2sv_obs_ids: each observation at its position in the run, with the id of its stored
-- identity (the lowest id, should an edited file hold the same identity twice; NULL while
-- the identity is not stored). A view, so step 2 reads it again after step 1 stored the new
-- identities: the observations are matched to identities in this one place.
CREATE OR REPLACE TEMP VIEW _bb2sv_obs_ids AS
SELECT o.*, i.id
FROM (SELECT row_number() OVER () AS position, * FROM _bb2sv_obs) AS o
LEFT JOIN (
    SELECT min(id) AS id, workspace, account_id, uuid, nickname, display_name, account_type, kind
    FROM member_identities
    WHERE workspace IN (SELECT workspace FROM _bb2sv_obs)
    GROUP BY ALL
) AS i
  ON (i.workspace, i.account_id, i.uuid, i.nickname, i.display_name, i.account_type, i.kind)
     IS NOT DISTINCT FROM
     (o.workspace, o.account_id, o.uuid, o.nickname, o.display_name, o.account_type, o.kind);

-- 1. Identities not stored yet get the next ids, in the order the run first saw them.
INSERT INTO member_identities
SELECT (SELECT coalesce(max(id), 0) FROM member_identities) + row_number() OVER (ORDER BY first),
       workspace, account_id, uuid, nickname, display_name, account_type, kind
FROM (
    SELECT workspace, account_id, uuid, nickname, display_name, account_type, kind,
           min(position) AS first
    FROM _bb2sv_obs_ids
    WHERE id IS NULL
    GROUP BY ALL
)
ORDER BY first;

-- 2. One state per observation, pointing at its identity.
INSERT INTO member_run_states
SELECT run_id, id, observed_at, permission, has_2fa_enabled, two_step_state, in_directory,
       directory_account_status, directory_claim_status, directory_mfa_enabled,
       directory_email_domain
FROM _bb2sv_obs_ids
ORDER BY position;

DROP VIEW _bb2sv_obs_ids;
