-- Core evidence: one row per collection run, its raw API pages verbatim, and the
-- observations derived from them. Append-only: bb2sv never updates or deletes rows.
-- raw_api_pages references collection_runs, so DuckDB refuses UPDATE or DELETE of a run
-- row that has pages (a cheap first guard; the real protection is the hash chain).

CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE collection_runs (
    run_id              VARCHAR PRIMARY KEY,
    seq                 BIGINT NOT NULL UNIQUE CHECK (seq >= 1),  -- position in the hash chain
    workspace           VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,                         -- API base URL
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ NOT NULL,
    status              VARCHAR NOT NULL CHECK (status IN ('complete', 'incomplete', 'failed')),
    member_count        BIGINT NOT NULL CHECK (member_count >= 0),
    request_count       BIGINT NOT NULL CHECK (request_count >= 0),
    tool_version        VARCHAR NOT NULL,
    prefect_flow_run_id VARCHAR,
    raw_sha256          VARCHAR NOT NULL,
    prev_run_hash       VARCHAR NOT NULL,
    run_hash            VARCHAR NOT NULL,
    error               VARCHAR,
    error_kind          VARCHAR,
    emulated            BOOLEAN NOT NULL,
    policy_sha256       VARCHAR NOT NULL,
    observations_sha256 VARCHAR NOT NULL
);

CREATE TABLE raw_api_pages (
    run_id      VARCHAR NOT NULL REFERENCES collection_runs (run_id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),  -- order received within the run
    listing     VARCHAR NOT NULL CHECK (listing IN ('members', 'permissions')),
    url         VARCHAR NOT NULL,
    status_code INTEGER NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    body        BLOB NOT NULL,
    sha256      VARCHAR NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- No index here on purpose: 100,000 rows per run, and an index would dominate file size.
CREATE TABLE member_2sv_observations (
    run_id          VARCHAR NOT NULL,
    workspace       VARCHAR NOT NULL,
    observed_at     TIMESTAMPTZ NOT NULL,
    account_id      VARCHAR,
    uuid            VARCHAR,
    nickname        VARCHAR,
    display_name    VARCHAR,
    permission      VARCHAR,
    has_2fa_enabled BOOLEAN,
    two_step_state  VARCHAR NOT NULL CHECK (two_step_state IN ('enabled', 'disabled', 'unknown')),
    CHECK (two_step_state = CASE has_2fa_enabled
                                WHEN true THEN 'enabled'
                                WHEN false THEN 'disabled'
                                ELSE 'unknown' END),
    CHECK (account_id IS NOT NULL OR uuid IS NOT NULL)
);
