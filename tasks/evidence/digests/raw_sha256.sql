-- raw_sha256 of each run: SHA-256 (hex) of the UTF-8 text made of one line per raw page,
-- in page seq order, joined by "\n" (no trailing newline). Each line is the JSON array
--   ["<seq>", "<listing>", "<url>", "<status_code>", "<fetched_at UTC ISO-8601, µs, Z>", "<sha256 of body>"]
-- as written by DuckDB's to_json (no spaces). A run with no pages has sha256('').
-- {pages} is a table or sub-query with raw_api_pages' columns.
SELECT
    run_id,
    sha256(string_agg(
        to_json([
            CAST(seq AS VARCHAR), listing, url, CAST(status_code AS VARCHAR),
            strftime(timezone('UTC', fetched_at), '%Y-%m-%dT%H:%M:%S.%fZ'), sha256
        ]::VARCHAR[]),
        chr(10) ORDER BY seq
    )) AS digest
FROM {pages}
GROUP BY run_id
