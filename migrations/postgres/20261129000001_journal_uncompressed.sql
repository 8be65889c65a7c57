-- Journal and snapshot payloads are MessagePack written once and read back only at
-- recovery. PostgreSQL's default pglz compression of these TOASTed values cost
-- about a tenth of the machine's CPU under load (measured with perf), at peak time,
-- to save disk. Store them out of line, uncompressed. Applies to rows written from
-- now on; older rows stay as they are and read back the same.
ALTER TABLE journal ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE snapshots ALTER COLUMN payload SET STORAGE EXTERNAL;
