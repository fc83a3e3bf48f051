-- Optional Ed25519 signatures of run hashes, made with a key that whoever can edit the file
-- does not hold (BB2SV_SIGNING_KEY). A signed run's run_hash covers its key_id
-- (tasks/evidence/run_record.py), so deleting or editing a row here breaks that run's hash,
-- the signature covers the run_hash (a rewritten run cannot be re-signed without the key),
-- and the next run's hash covers the signature.
-- No foreign key to collection_runs: the hashes are the protection, and DuckDB would refuse
-- every later ALTER or DROP of collection_runs while a table references it.

CREATE TABLE run_signatures (
    run_id     VARCHAR PRIMARY KEY,
    key_id     VARCHAR NOT NULL,   -- SHA-256 (hex) of the raw 32-byte Ed25519 public key
    public_key VARCHAR NOT NULL,   -- that raw key, base64; verify trusts only --public-key
    signature  VARCHAR NOT NULL    -- base64 Ed25519 of 'bb2sv.run-signature/1' LF run_hash
);
