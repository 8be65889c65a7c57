-- Idempotency records of operations (deposits and withdrawals with an id;
-- captures, voids, cancels, restocks, commits and releases under an
-- Idempotency-Key; refused reservations), archived like finished entities once
-- they have been in memory for engine.finished_in_memory_ms. A retry whose
-- record left memory is answered from here.
--
-- id: the operation's key, "kind/target/operation id" (see OpKey in
-- actors/src/model.rs); status: the kind of outcome recorded; finished_at: when
-- the operation was decided (ms since the epoch). Rows older than
-- engine.idempotency_retention_ms may be deleted.
CREATE TABLE IF NOT EXISTS archived_ops (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_ops_finished_at ON archived_ops (finished_at);
