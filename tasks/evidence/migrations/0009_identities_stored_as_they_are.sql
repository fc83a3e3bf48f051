-- Member identities' text is stored as it is (USING COMPRESSION uncompressed; issue 13:
-- 100,000 members loaded within 1 s). A first run of 100,000 members adds 100,000
-- identities in its transaction; DuckDB's checkpoint at its commit spent ~0.2 s choosing
-- a compression for their seven text columns (0.28 s of a 0.36 s commit). Stored as they
-- are they take ~150 bytes each instead of ~65: an identity is stored once, on the day it
-- is first seen, so this adds under 0.3 bytes per member-day to a year of daily runs.
-- Nothing in the hash chain changes. Upgrading copies the rows in stored order (a column's
-- storage cannot be changed in place).

CREATE TABLE member_identities_0009 (
    id           BIGINT NOT NULL,
    workspace    VARCHAR NOT NULL USING COMPRESSION uncompressed,
    account_id   VARCHAR USING COMPRESSION uncompressed,
    uuid         VARCHAR USING COMPRESSION uncompressed,
    nickname     VARCHAR USING COMPRESSION uncompressed,
    display_name VARCHAR USING COMPRESSION uncompressed,
    account_type VARCHAR USING COMPRESSION uncompressed,
    kind         VARCHAR USING COMPRESSION uncompressed,
    CHECK (account_id IS NOT NULL OR uuid IS NOT NULL)
);

INSERT INTO member_identities_0009
SELECT id, workspace, account_id, uuid, nickname, display_name, account_type, kind
FROM member_identities ORDER BY rowid;

DROP TABLE member_identities;
ALTER TABLE member_identities_0009 RENAME TO member_identities;
