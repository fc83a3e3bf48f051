-- Every HTTP response with its body, byte for byte: the metadata of raw_api_responses and
-- the body from raw_page_bodies, stored as it arrived, compressed (body_zlib, expanded by
-- expanded_page_body; migration 0008), or rebuilt from its patch (copy bytes
-- [offset, offset + length) of the base, or insert data, in order; migration 0006).
-- Bodies are expanded for the pages a query reads (a filter on run_id reads only that
-- run's), once per page and base: a query that needs no body expands none.
-- body is NULL when no stored body has the page's sha256, a compressed one does not give it
-- back, or a row holds more than one of body, patch and body_zlib (only a table rebuilt
-- without its CHECK can); `bb2sv verify` reports each.
CREATE OR REPLACE VIEW raw_api_pages AS
WITH joined AS (  -- referenced once: a query that needs no body evaluates none of this
    SELECT
        r.run_id, r.seq, r.listing, r.url, r.status_code, r.fetched_at, r.sha256, b.patch,
        (b.body IS NOT NULL)::INTEGER + (b.patch IS NOT NULL)::INTEGER
            + (b.body_zlib IS NOT NULL)::INTEGER = 1 AS one_kind,
        CASE WHEN b.patch IS NULL AND (b.body IS NULL OR b.body_zlib IS NULL)
            THEN coalesce(b.body, expanded_page_body(b.body_zlib, b.sha256)) END AS whole,
        CASE WHEN base.body IS NULL OR base.body_zlib IS NULL
            THEN coalesce(base.body, expanded_page_body(base.body_zlib, base.sha256))
        END AS base_body
    FROM raw_api_responses AS r
    LEFT JOIN raw_page_bodies AS b ON b.sha256 = r.sha256
    LEFT JOIN raw_page_bodies AS base ON base.sha256 = b.base_sha256 AND base.patch IS NULL
)
SELECT
    run_id, seq, listing, url, status_code, fetched_at,
    CASE
        WHEN NOT one_kind THEN NULL
        WHEN patch IS NULL THEN whole
        WHEN len(patch) = 0 THEN CASE WHEN base_body IS NOT NULL THEN ''::BLOB END
        ELSE list_reduce(
            list_transform(
                patch,
                lambda op: coalesce(
                    op.data, array_slice(base_body, op."offset" + 1, op."offset" + op."length")
                )
            ),
            lambda x, y: x || y
        )
    END AS body,
    sha256
FROM joined;
