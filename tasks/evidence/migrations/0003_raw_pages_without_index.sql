-- raw_api_pages without PRIMARY KEY (run_id, seq) and without its foreign key.
-- With those indexes DuckDB kept every page body of the file in one compressed segment and
-- recompressed all of it at each checkpoint: after a year of daily 10,000-member runs, storing
-- one more run cost a 25 s checkpoint, growing with history (0.1-0.3 s without them).
-- Nothing is lost for the auditor: the order and uniqueness of pages are proven by raw_sha256
-- and the hash chain (`bb2sv verify`); run_policies still references collection_runs, so a run
-- row still cannot be deleted or renumbered in place.
-- Upgrading an existing file copies its pages once, in stored order.

CREATE TABLE raw_api_pages_v3 (
    run_id      VARCHAR NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),  -- order received within the run
    listing     VARCHAR NOT NULL CHECK (listing IN ('members', 'permissions')),
    url         VARCHAR NOT NULL,
    status_code INTEGER NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    body        BLOB NOT NULL,
    sha256      VARCHAR NOT NULL
);

INSERT INTO raw_api_pages_v3
SELECT run_id, seq, listing, url, status_code, fetched_at, body, sha256 FROM raw_api_pages;

DROP TABLE raw_api_pages;

ALTER TABLE raw_api_pages_v3 RENAME TO raw_api_pages;
