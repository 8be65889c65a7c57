-- Snapshots in chunks: a head row in `snapshots` (checksum of the whole payload,
-- chunk count, size) and the payload in rows of at most 1 MiB here, written in
-- the same transaction. One `bytea` per snapshot hit PostgreSQL's 1 GB value limit
-- at about ten million payments per shard. Heads written before this migration
-- keep their payload inline and `chunks = 0`.
CREATE TABLE IF NOT EXISTS snapshot_chunks (
    shard       INTEGER NOT NULL,
    seq         BIGINT  NOT NULL,
    chunk       INTEGER NOT NULL,
    payload     BYTEA   NOT NULL,
    PRIMARY KEY (shard, seq, chunk),
    CHECK (chunk >= 0)
);

ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS chunks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS bytes BIGINT NOT NULL DEFAULT 0;

-- Same compression as the other payloads (see the payload compression migration).
DO $$
BEGIN
    ALTER TABLE snapshot_chunks ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    ALTER TABLE snapshot_chunks ALTER COLUMN payload SET STORAGE EXTERNAL;
END
$$;
