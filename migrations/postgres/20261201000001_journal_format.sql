-- The journal format each record and snapshot payload is written in (see
-- "Journal compatibility" in actors/src/journal.rs). Rows stored before this
-- column existed are format 1, and so is everything a Surge from before it
-- writes (it names no format): the default stays 1 for good. Recovery refuses a
-- row of a format the running binary does not read. A constant default adds the
-- column without rewriting the table.
ALTER TABLE journal ADD COLUMN IF NOT EXISTS format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE snapshots ADD COLUMN IF NOT EXISTS format INTEGER NOT NULL DEFAULT 1;
