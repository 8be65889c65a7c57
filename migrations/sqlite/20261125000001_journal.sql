-- The write-ahead journal: one row per shard batch (a MessagePack array of events).
CREATE TABLE IF NOT EXISTS journal (
    shard       INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    checksum    INTEGER NOT NULL,
    written_at  TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (shard, first_seq),
    CHECK (last_seq >= first_seq)
) WITHOUT ROWID;

-- Whole-shard snapshots; the newest valid one plus the journal after it rebuilds a shard.
CREATE TABLE IF NOT EXISTS snapshots (
    shard       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    checksum    INTEGER NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (shard, seq)
);

-- Shard ownership epochs (fencing), as in the PostgreSQL schema.
CREATE TABLE IF NOT EXISTS shard_leases (
    shard       INTEGER PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    acquired_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
