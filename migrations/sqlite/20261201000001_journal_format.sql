-- The journal format each record and snapshot payload is written in, as in the
-- PostgreSQL schema: rows stored before this column existed, and rows a Surge
-- from before it writes, are format 1 (the default stays 1 for good). Adding a
-- column with a constant default does not rewrite the table.
ALTER TABLE journal ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE snapshots ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
