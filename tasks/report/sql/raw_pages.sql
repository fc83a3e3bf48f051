-- Every raw API page of a run, listing by listing, each in the order received (bodies stay in the evidence file).
-- $run_id
SELECT seq, listing, url, status_code, fetched_at, sha256
FROM raw_api_responses  -- raw_api_pages without the bodies, which it would rebuild
WHERE run_id = $run_id
ORDER BY seq
