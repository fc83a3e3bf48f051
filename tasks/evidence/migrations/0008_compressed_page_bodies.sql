-- Page bodies stored whole are kept compressed (issue 13: 100,000 members in 500 MiB).
-- A run's new whole bodies went to DuckDB as they arrived: a 100,000-member first run gave
-- its one transaction ~200 MB of JSON, which DuckDB held until the commit and held again
-- to compress at the checkpoint. Compressed by bb2sv as they arrive (zlib, level 1,
-- tasks/page_encoding.py), the same bodies are ~23 MB.
--
-- * body_zlib: a body stored whole, compressed; it is stored as it is (USING COMPRESSION
--   uncompressed): DuckDB's own compression finds nothing to gain in zlib data, and looking
--   for it took 0.5 s of a 100,000-member run's commit. Each row holds exactly one of body
--   (a body as it arrived: the rows stored before this migration, and a body that would
--   not expand back within a reader's bounds, tasks/page_encoding.py), patch (of a whole
--   body, expanded first) or body_zlib.
-- * raw_api_pages gives every body back byte for byte through bb2sv (`bb2sv query`, and
--   the readers of reports and verify), which expand body_zlib; plain DuckDB has no zlib,
--   so there its `body` raises an error that says how to read them
--   (views/00_expanded_page_body.sql).
-- Nothing in the hash chain changes: it covers each body's SHA-256 as it arrived, and
-- `bb2sv verify` expands and re-hashes every stored body.
-- Upgrading copies the rows in stored order (a CHECK constraint cannot be changed in place).

CREATE TABLE raw_page_bodies_0008 (
    sha256      VARCHAR NOT NULL,  -- SHA-256 of the body this row gives back
    run_id      VARCHAR NOT NULL,  -- the run that stored it
    base_sha256 VARCHAR,           -- NULL: the row holds the body; else `patch` applies to it
    body        BLOB,              -- the body as it arrived (before bb2sv 0.5; see above)
    patch       STRUCT("offset" BIGINT, "length" BIGINT, "data" BLOB)[],
    body_zlib   BLOB USING COMPRESSION uncompressed,  -- the body, zlib-compressed
    CHECK ((base_sha256 IS NULL) = (patch IS NULL)),
    CHECK ((body IS NOT NULL)::INTEGER + (patch IS NOT NULL)::INTEGER
           + (body_zlib IS NOT NULL)::INTEGER = 1)
);

INSERT INTO raw_page_bodies_0008 (sha256, run_id, base_sha256, body, patch)
SELECT sha256, run_id, base_sha256, body, patch FROM raw_page_bodies ORDER BY rowid;

DROP TABLE raw_page_bodies;
ALTER TABLE raw_page_bodies_0008 RENAME TO raw_page_bodies;
