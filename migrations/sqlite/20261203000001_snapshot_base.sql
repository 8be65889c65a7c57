-- A snapshot may hold the filter of archived keys as a delta: the hashes
-- inserted since an earlier snapshot that holds it whole, whose sequence number
-- is `base_seq` (NULL: this snapshot holds it whole). Recovery reads the base
-- beside the snapshot, and pruning keeps every base a kept snapshot names (see
-- actors/src/filter.rs).
ALTER TABLE snapshots ADD COLUMN base_seq INTEGER;
