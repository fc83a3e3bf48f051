-- Every HTTP response with its body, byte for byte: the metadata of raw_api_responses and
-- the body from raw_page_bodies, stored as it arrived, compressed (body_zlib, expanded by
-- expanded_page_body; migration 0008), or rebuilt from its patch (copy bytes
-- [offset, offset + length) of the base, or insert data, in order; migration 0006). Each
-- stored body is expanded and rebuilt once per query, not once per page that has it.
-- body is NULL when no stored body has the page's sha256 (`bb2sv verify` reports it).
CREATE OR REPLACE VIEW raw_api_pages AS
WITH wholes AS (
    SELECT sha256, coalesce(body, expanded_page_body(body_zlib)) AS body
    FROM raw_page_bodies
    WHERE patch IS NULL
),
bodies AS (
    SELECT
        b.sha256,
        CASE
            WHEN b.patch IS NULL THEN coalesce(b.body, expanded_page_body(b.body_zlib))
            ELSE list_reduce(
                list_transform(
                    b.patch,
                    lambda op: coalesce(
                        op.data, array_slice(base.body, op."offset" + 1, op."offset" + op."length")
                    )
                ),
                lambda x, y: x || y
            )
        END AS body
    FROM raw_page_bodies AS b
    LEFT JOIN wholes AS base ON base.sha256 = b.base_sha256 AND b.patch IS NOT NULL
)
SELECT r.run_id, r.seq, r.listing, r.url, r.status_code, r.fetched_at, b.body, r.sha256
FROM raw_api_responses AS r
LEFT JOIN bodies AS b ON b.sha256 = r.sha256;
