-- The write-ahead journal: one row per shard batch (a MessagePack array of events).
CREATE TABLE IF NOT EXISTS journal (
    shard       INTEGER     NOT NULL,
    first_seq   BIGINT      NOT NULL,
    last_seq    BIGINT      NOT NULL,
    epoch       BIGINT      NOT NULL,
    payload     BYTEA       NOT NULL,
    checksum    BIGINT      NOT NULL,
    written_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, first_seq),
    CHECK (last_seq >= first_seq)
);

-- Whole-shard snapshots; the newest valid one plus the journal after it rebuilds a shard.
CREATE TABLE IF NOT EXISTS snapshots (
    shard       INTEGER     NOT NULL,
    seq         BIGINT      NOT NULL,
    payload     BYTEA       NOT NULL,
    checksum    BIGINT      NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, seq)
);

-- Shard ownership: every start takes a new epoch; journal writes carrying an older
-- epoch are refused (fencing), ready for shards spread over several processes.
CREATE TABLE IF NOT EXISTS shard_leases (
    shard       INTEGER     PRIMARY KEY,
    epoch       BIGINT      NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
