-- A body stored compressed (raw_page_bodies.body_zlib, migration 0008) as it arrived, given
-- the sha256 it must hash to. bb2sv's readers expand it with a function of their own, which
-- replaces this macro there (page_bodies.page_body_macro) and gives NULL for a body that does
-- not hash to its name. Plain DuckDB has no zlib, so here it says how to read such a body
-- instead of giving other bytes.
CREATE OR REPLACE MACRO expanded_page_body(body_zlib, sha256) AS
    CASE
        WHEN body_zlib IS NULL THEN NULL::BLOB
        ELSE error(
            'raw_api_pages: this page body is stored zlib-compressed '
            || '(raw_page_bodies.body_zlib ' || sha256 || '), which plain DuckDB cannot '
            || 'expand. Read raw_api_pages with `bb2sv query`; in Python, see '
            || 'tasks/evidence/page_bodies.py: expand_in_plain_duckdb.'
        )
    END;
