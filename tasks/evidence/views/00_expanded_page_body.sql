-- A body stored compressed (raw_page_bodies.body_zlib, migration 0008) as it arrived.
-- bb2sv's readers expand it with a function of their own, which replaces this macro there
-- (catalog.READER_PAGE_BODY). Plain DuckDB has no zlib, so here it says how to read such a
-- body instead of giving other bytes.
CREATE OR REPLACE MACRO expanded_page_body(body_zlib) AS
    CASE
        WHEN body_zlib IS NULL THEN NULL::BLOB
        ELSE error(
            'raw_api_pages: this page body is stored zlib-compressed '
            || '(raw_page_bodies.body_zlib), which plain DuckDB cannot expand. Read '
            || 'raw_api_pages with `bb2sv query`, or expand body_zlib with zlib yourself '
            || '(Python: zlib.decompress).'
        )
    END;
