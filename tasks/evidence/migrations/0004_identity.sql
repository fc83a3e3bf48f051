-- Identity: who is in scope and which second factor proves it (issue 12).
--
-- * raw_api_pages may hold the Atlassian organization directory's pages (listing
--   'directory'). DuckDB cannot change a CHECK in place, so the table is copied once, in
--   stored order, as migration 0003 did (same columns, no index).
-- * member_2sv_observations gains the identity columns, derived from the raw pages like the
--   others: account_type and kind (Bitbucket's user.type / user.kind) and what the run's
--   directory pages say about the member's account_id. Rows of earlier runs keep NULL there:
--   they are read as they were recorded (everybody in scope, Bitbucket 2SV only).
-- * collection_runs gains how the run read the directory (directory_status NULL: not
--   configured) and identity_sha256, the digest of the identity columns
--   (digests/identity_sha256.sql); NULL for runs recorded before, whose run_hash does not
--   cover these columns (run_record.py adds a key to the hashed record only when it is set).
-- * run_policies gains the policy's identity rules. Earlier runs get the values their policy
--   meant: accepted_factors [bitbucket_2sv], nobody excluded, no SSO attestation.

CREATE TABLE raw_api_pages_v4 (
    run_id      VARCHAR NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),  -- order received within the run
    listing     VARCHAR NOT NULL CHECK (listing IN ('members', 'permissions', 'directory')),
    url         VARCHAR NOT NULL,
    status_code INTEGER NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    body        BLOB NOT NULL,
    sha256      VARCHAR NOT NULL
);

INSERT INTO raw_api_pages_v4
SELECT run_id, seq, listing, url, status_code, fetched_at, body, sha256 FROM raw_api_pages;

DROP TABLE raw_api_pages;

ALTER TABLE raw_api_pages_v4 RENAME TO raw_api_pages;

ALTER TABLE member_2sv_observations ADD COLUMN account_type VARCHAR;            -- user, app_user, …
ALTER TABLE member_2sv_observations ADD COLUMN kind VARCHAR;                    -- an app user's kind
ALTER TABLE member_2sv_observations ADD COLUMN in_directory BOOLEAN;            -- NULL: no directory read
ALTER TABLE member_2sv_observations ADD COLUMN directory_account_status VARCHAR; -- accountStatus
ALTER TABLE member_2sv_observations ADD COLUMN directory_claim_status VARCHAR;  -- claimStatus
ALTER TABLE member_2sv_observations ADD COLUMN directory_mfa_enabled BOOLEAN;   -- mfaEnabled
ALTER TABLE member_2sv_observations ADD COLUMN directory_email_domain VARCHAR;  -- domain of email

ALTER TABLE collection_runs ADD COLUMN directory_status VARCHAR;  -- complete | incomplete | failed
ALTER TABLE collection_runs ADD COLUMN directory_error VARCHAR;
ALTER TABLE collection_runs ADD COLUMN directory_source VARCHAR;  -- the organization's Admin API URL
ALTER TABLE collection_runs ADD COLUMN identity_sha256 VARCHAR;

ALTER TABLE run_policies ADD COLUMN accepted_factors VARCHAR[] DEFAULT ['bitbucket_2sv'];
ALTER TABLE run_policies ADD COLUMN exclude_account_types VARCHAR[] DEFAULT [];
ALTER TABLE run_policies ADD COLUMN sso_email_domains VARCHAR[];
ALTER TABLE run_policies ADD COLUMN sso_identity_provider VARCHAR;
ALTER TABLE run_policies ADD COLUMN sso_attestation VARCHAR;
