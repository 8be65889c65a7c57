-- Snapshots in chunks, as in the PostgreSQL schema: a head row in `snapshots`
-- (checksum of the whole payload, chunk count, size) and the payload in rows of at
-- most 1 MiB here, written in one transaction. SQLite caps a value at 1 GB by
-- default. Heads written before this migration keep their payload inline and
-- `chunks = 0`. (A rowid table: SQLite advises against WITHOUT ROWID for rows
-- this large.)
CREATE TABLE IF NOT EXISTS snapshot_chunks (
    shard       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    chunk       INTEGER NOT NULL CHECK (chunk >= 0),
    payload     BLOB    NOT NULL,
    PRIMARY KEY (shard, seq, chunk)
);

ALTER TABLE snapshots ADD COLUMN chunks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
