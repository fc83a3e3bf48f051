-- The policy in force for each run, stored with the run so reports and findings can be
-- rebuilt from the file alone. Severity labels are copied from tasks/policy.py at load
-- time, so SQL never hard-codes them.

CREATE TABLE run_policies (
    run_id           VARCHAR PRIMARY KEY REFERENCES collection_runs (run_id),
    policy_sha256    VARCHAR NOT NULL,   -- sha256 of policy_text (UTF-8)
    policy_text      VARCHAR NOT NULL,   -- the YAML exactly as read; '' for the built-in default
    source_path      VARCHAR,
    grace_days       INTEGER NOT NULL CHECK (grace_days >= 0),
    sla_days         INTEGER NOT NULL CHECK (sla_days >= 0),
    severity_owner   VARCHAR NOT NULL,   -- owner without 2SV (disabled or unknown)
    severity_member  VARCHAR NOT NULL,   -- other member with 2SV disabled
    severity_unknown VARCHAR NOT NULL    -- other member whose 2SV state is unknown
);

CREATE TABLE policy_exceptions (
    run_id      VARCHAR NOT NULL REFERENCES collection_runs (run_id),
    workspace   VARCHAR NOT NULL,
    account_id  VARCHAR,
    nickname    VARCHAR,
    reason      VARCHAR NOT NULL,
    approved_by VARCHAR NOT NULL,
    ticket      VARCHAR NOT NULL,
    expires_on  DATE NOT NULL,           -- applies on UTC days strictly before this date
    CHECK (account_id IS NOT NULL OR nickname IS NOT NULL)
);
