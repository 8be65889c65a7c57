//! What change data capture reads back: each journal row's stored notices, in
//! order per shard, and the cursor each sink keeps per shard (table
//! `cdc_cursors`). Implemented by the PostgreSQL and SQLite journals on their
//! own pools; only committed rows are ever visible, so nothing not yet durable
//! is read.

use futures::future::BoxFuture;
use surge_actors::{JournalError, ShardId};

/// One journal row as change data capture reads it.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub first_seq: u64,
    pub last_seq: u64,
    /// When the row was written (database clock, ms since the Unix epoch;
    /// SQLite keeps whole seconds).
    pub written_at_ms: u64,
    /// The stored notices (`JournalRecord::with_changes`); `None` for a row
    /// written while change data capture was off.
    pub changes: Option<Vec<u8>>,
}

pub trait ChangeLog: Send + Sync + 'static {
    /// The rows of `shard` ending after `after`, oldest first, at most `rows_max`.
    fn read_changes(
        &self,
        shard: ShardId,
        after: u64,
        rows_max: usize,
    ) -> BoxFuture<'static, Result<Vec<ChangeRow>, JournalError>>;

    /// The shard's last durable sequence number (its newest row, or its newest
    /// snapshot when the rows after it were pruned; 0 for a new shard).
    fn head(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>>;

    /// The sink's cursor for the shard, if it has one.
    fn cursor(
        &self,
        sink: &str,
        shard: ShardId,
    ) -> BoxFuture<'static, Result<Option<u64>, JournalError>>;

    /// Stores the sink's cursor for the shard: every change of a row ending at
    /// or before `seq` was confirmed by the sink.
    fn store_cursor(
        &self,
        sink: &str,
        shard: ShardId,
        seq: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>>;
}
