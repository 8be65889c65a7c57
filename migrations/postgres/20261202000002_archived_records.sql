-- The records that make retries and resent saga steps idempotent, archived
-- like finished entities once they have been in memory for
-- engine.finished_in_memory_ms.
--
-- Idempotency records of operations: deposits and withdrawals with an id;
-- captures, voids, cancels, restocks, commits and releases under an
-- Idempotency-Key; refused reservations. A retry whose
-- record left memory is answered from here.
--
-- id: the operation's key, "kind/target/operation id" (see OpKey in
-- actors/src/model.rs); status: the kind of outcome recorded; finished_at: when
-- the operation was decided (ms since the epoch). Rows older than
-- engine.idempotency_retention_ms may be deleted. No index on finished_at: each
-- index costs every archive round an insert per row.
CREATE TABLE IF NOT EXISTS archived_ops (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);

-- Saga step records of the shard that applied the step (debits, credits,
-- holds, releases, captures, order line steps), archived once final (an active
-- hold's once it is released or captured). A coordinator's step resent after
-- its record left memory is answered from here, never applied twice.
--
-- id: "payment/<id>/<tag>" or "order/<id>/<tag>" (see StepKey::text in
-- actors/src/model.rs); status: done or rejected; finished_at: when the step
-- was applied.
CREATE TABLE IF NOT EXISTS archived_steps (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);
