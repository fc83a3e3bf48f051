-- Observations stored as who (once) and what each run saw (issue 13: storage).
-- A member's account_id, uuid, nickname and display name are the same run after run, and
-- were ~45 of the ~55 bytes an observation row took (DuckDB compresses within a run's rows,
-- never across runs). Now:
--
-- * member_identities: one row per distinct (workspace, account_id, uuid, nickname,
--   display_name, account_type, kind), numbered by `id` in the order first stored.
-- * member_run_states: one row per member per run: the identity's id and everything that
--   can change from run to run (permission, 2SV state, directory facts, observed_at).
-- * member_2sv_observations is now a view joining the two (views/02_member_2sv_observations.sql),
--   with the same columns and rows as the table had.
-- Nothing in the hash chain changes: observations_sha256 and identity_sha256 are computed
-- over that view exactly as over the table; editing an identity row changes the rows of
-- every run that saw it, and `bb2sv verify` names the first.
-- Upgrading numbers the distinct identities in stored order and copies the states in
-- stored order.

CREATE TABLE member_identities (
    id           BIGINT NOT NULL,
    workspace    VARCHAR NOT NULL,
    account_id   VARCHAR,
    uuid         VARCHAR,
    nickname     VARCHAR,
    display_name VARCHAR,
    account_type VARCHAR,
    kind         VARCHAR,
    CHECK (account_id IS NOT NULL OR uuid IS NOT NULL)
);

CREATE TABLE member_run_states (
    run_id                   VARCHAR NOT NULL,
    member_id                BIGINT NOT NULL,  -- member_identities.id
    observed_at              TIMESTAMPTZ NOT NULL,
    permission               VARCHAR,
    has_2fa_enabled          BOOLEAN,
    two_step_state           VARCHAR NOT NULL
        CHECK (two_step_state IN ('enabled', 'disabled', 'unknown')),
    in_directory             BOOLEAN,
    directory_account_status VARCHAR,
    directory_claim_status   VARCHAR,
    directory_mfa_enabled    BOOLEAN,
    directory_email_domain   VARCHAR,
    CHECK (two_step_state = CASE has_2fa_enabled
                                WHEN true THEN 'enabled'
                                WHEN false THEN 'disabled'
                                ELSE 'unknown' END)
);

INSERT INTO member_identities
SELECT row_number() OVER (ORDER BY min(rowid)), workspace, account_id, uuid, nickname,
       display_name, account_type, kind
FROM member_2sv_observations
GROUP BY workspace, account_id, uuid, nickname, display_name, account_type, kind
ORDER BY min(rowid);

INSERT INTO member_run_states
SELECT o.run_id, i.id, o.observed_at, o.permission, o.has_2fa_enabled, o.two_step_state,
       o.in_directory, o.directory_account_status, o.directory_claim_status,
       o.directory_mfa_enabled, o.directory_email_domain
FROM (SELECT rowid AS position, * FROM member_2sv_observations) AS o
JOIN member_identities AS i
  ON  i.workspace = o.workspace
  AND i.account_id IS NOT DISTINCT FROM o.account_id
  AND i.uuid IS NOT DISTINCT FROM o.uuid
  AND i.nickname IS NOT DISTINCT FROM o.nickname
  AND i.display_name IS NOT DISTINCT FROM o.display_name
  AND i.account_type IS NOT DISTINCT FROM o.account_type
  AND i.kind IS NOT DISTINCT FROM o.kind
ORDER BY o.position;

DROP TABLE member_2sv_observations;
