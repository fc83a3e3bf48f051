-- Every HTTP response with its body, byte for byte: the metadata of raw_api_responses and
-- the body from raw_page_bodies, stored whole or rebuilt from its patch (copy base bytes
-- [offset, offset + length), or insert data, in order; migration 0006).
-- body is NULL when no stored body has the page's sha256 (`bb2sv verify` reports it).
CREATE OR REPLACE VIEW raw_api_pages AS
SELECT
    r.run_id, r.seq, r.listing, r.url, r.status_code, r.fetched_at,
    CASE
        WHEN b.patch IS NULL THEN b.body
        ELSE list_reduce(
            list_transform(
                b.patch,
                lambda op: coalesce(
                    op.data, array_slice(base.body, op."offset" + 1, op."offset" + op."length")
                )
            ),
            lambda x, y: x || y
        )
    END AS body,
    r.sha256
FROM raw_api_responses AS r
LEFT JOIN raw_page_bodies AS b ON b.sha256 = r.sha256
LEFT JOIN raw_page_bodies AS base ON base.sha256 = b.base_sha256 AND base.patch IS NULL;
