-- Change data capture: see the PostgreSQL migration of the same name.
ALTER TABLE journal ADD COLUMN changes BLOB;

CREATE TABLE IF NOT EXISTS cdc_cursors (
    sink        TEXT    NOT NULL,
    shard       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (sink, shard)
);
