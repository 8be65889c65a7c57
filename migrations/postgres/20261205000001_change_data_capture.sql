-- Change data capture (docs/ARCHITECTURE.md, "Change data capture"). While it is
-- on, each journal row also carries its batch's notices (`changes`: an xxh3-64
-- checksum, then MessagePack of the notices; NULL while it was off), written in
-- the same transaction as the events, so a change is readable exactly when its
-- events are durable. The tailer reads them per shard in order and keeps, per
-- sink and shard, the last sequence number its sink confirmed; pruning the
-- journal keeps what a cursor has not passed (up to `cdc.lag_limit_events`).
ALTER TABLE journal ADD COLUMN IF NOT EXISTS changes BYTEA;
DO $$
BEGIN
    ALTER TABLE journal ALTER COLUMN changes SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    ALTER TABLE journal ALTER COLUMN changes SET STORAGE EXTERNAL;
END
$$;

CREATE TABLE IF NOT EXISTS cdc_cursors (
    sink        TEXT        NOT NULL,
    shard       INTEGER     NOT NULL,
    -- Every change of a record with `last_seq` at or below this was confirmed.
    seq         BIGINT      NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, shard)
);
