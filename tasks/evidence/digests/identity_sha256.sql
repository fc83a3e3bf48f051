-- identity_sha256 of each run: SHA-256 (hex) of the UTF-8 text made of one line per
-- observation, lines sorted (byte order) and joined by "\n" (no trailing newline). Each line
-- is the JSON array of the observation's identity values as text (null stays null):
--   [account_id, uuid, account_type, kind, in_directory ("true"/"false"/null),
--    directory_account_status, directory_claim_status, directory_mfa_enabled, directory_email_domain]
-- A run with no observations has sha256(''). {observations} has the table's columns.
-- This query makes the lines; hashing.digests sorts, joins and hashes each run's lines
-- (as for observations_sha256.sql).
SELECT
    run_id,
    to_json([
        account_id, uuid, account_type, kind, CAST(in_directory AS VARCHAR),
        directory_account_status, directory_claim_status,
        CAST(directory_mfa_enabled AS VARCHAR), directory_email_domain
    ]::VARCHAR[])::VARCHAR AS line
FROM {observations}
