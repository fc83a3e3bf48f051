-- observations_sha256 of each run: SHA-256 (hex) of the UTF-8 text made of one line per
-- observation, lines sorted (byte order) and joined by "\n" (no trailing newline). Each line
-- is the JSON array of the observation's values as text (null stays null):
--   [workspace, observed_at (UTC ISO-8601, µs, Z), account_id, uuid, nickname,
--    display_name, permission, has_2fa_enabled ("true"/"false"/null), two_step_state]
-- Sorting the lines themselves makes the digest independent of row order.
-- A run with no observations has sha256(''). {observations} has the table's columns.
-- This query makes the lines; hashing.digests sorts, joins and hashes each run's lines
-- (in DuckDB, `sha256(string_agg(line, chr(10) ORDER BY line))` per run, which gives the
-- same digest, took five times as long: most of `bb2sv verify`).
SELECT
    run_id,
    to_json([
        workspace, strftime(timezone('UTC', observed_at), '%Y-%m-%dT%H:%M:%S.%fZ'),
        account_id, uuid, nickname, display_name, permission,
        CAST(has_2fa_enabled AS VARCHAR), two_step_state
    ]::VARCHAR[])::VARCHAR AS line
FROM {observations}
