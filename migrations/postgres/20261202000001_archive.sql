-- The archive: finished payments, orders (with their lines and history) and
-- reservations, each stored whole once it can never change again, after which
-- its shard lets it leave memory (see actors/src/archive.rs). Reads by id and
-- idempotent retries of ids that left memory are answered from here.
--
-- body: the entity in the journal's encoding (MessagePack, fields by position),
-- of the journal format in `format`. The other columns are for operators and
-- indexes; the body alone is what Surge answers with. Ids compare as bytes
-- (COLLATE "C"): a locale's collation would cost every index insert and probe
-- a string comparison through the locale, for an order nobody reads.
CREATE TABLE IF NOT EXISTS archived_payments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_orders (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);
-- id: "sku/reservation id" (neither contains a slash).
CREATE TABLE IF NOT EXISTS archived_reservations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    format      INTEGER NOT NULL,
    body        BYTEA NOT NULL
);
