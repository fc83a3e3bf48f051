-- Page bodies stored once, and as patches of an earlier body (issue 13: storage).
-- A daily run reads pages that are mostly byte-identical to the day before (a 10,000-member
-- workspace changes a few of its 200 pages a day), so raw_api_pages, one full body per
-- response, cost ~200 of the ~300 bytes the file held per member and day.
--
-- * raw_api_responses: one row per HTTP response, everything raw_api_pages had but the body.
--   sha256 is the SHA-256 of the body received; it names the body in raw_page_bodies.
-- * raw_page_bodies: one row per distinct body (the first run that received it stored it):
--   the body whole (patch NULL), or a patch of a body stored whole (base_sha256): copy
--   base bytes [offset, offset + length) or insert `data`, in list order
--   (tasks/evidence/page_patch.py).
-- * raw_api_pages is now a view over the two (views/01_raw_api_pages.sql) with the same
--   columns; it rebuilds every body byte for byte, in SQL.
-- Nothing in the hash chain changes: raw_sha256 covers each page's sha256 as before, and
-- `bb2sv verify` rebuilds and re-hashes every stored body.
-- Upgrading copies the responses in stored order and each distinct body once, keyed by the
-- SHA-256 of its bytes as they are (a body edited before the upgrade is kept, and verify
-- still reports its page).

CREATE TABLE raw_api_responses (
    run_id      VARCHAR NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),  -- order received within the run
    listing     VARCHAR NOT NULL CHECK (listing IN ('members', 'permissions', 'directory')),
    url         VARCHAR NOT NULL,
    status_code INTEGER NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    sha256      VARCHAR NOT NULL                    -- SHA-256 of the body received
);

CREATE TABLE raw_page_bodies (
    sha256      VARCHAR NOT NULL,  -- SHA-256 of the body this row gives back
    run_id      VARCHAR NOT NULL,  -- the run that stored it
    base_sha256 VARCHAR,           -- NULL: `body` is the body; else `patch` applies to that one
    body        BLOB,
    patch       STRUCT("offset" BIGINT, "length" BIGINT, "data" BLOB)[],
    CHECK ((base_sha256 IS NULL) = (patch IS NULL)),
    CHECK ((body IS NULL) = (patch IS NOT NULL))
);

INSERT INTO raw_api_responses
SELECT run_id, seq, listing, url, status_code, fetched_at, sha256 FROM raw_api_pages;

INSERT INTO raw_page_bodies
SELECT actual, arg_min(run_id, position), NULL, arg_min(body, position), NULL
FROM (SELECT rowid AS position, run_id, body, sha256(body) AS actual FROM raw_api_pages)
GROUP BY actual
ORDER BY min(position);

DROP TABLE raw_api_pages;
