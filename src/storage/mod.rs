//! Durable journal backends: PostgreSQL (production) and SQLite (embedded default).
//!
//! Both implement `surge_actors::Journal` with the same schema (`migrations/`),
//! run their migrations at start, and share one group-commit writer: every append
//! from every shard goes to a single task that writes whatever has queued up in one
//! statement or transaction, then acknowledges all of it.
//!
//! A snapshot is stored as a head row (`snapshots`: sequence, checksum, chunk
//! count) and its payload in rows of at most [`SNAPSHOT_CHUNK_BYTES_MAX`]
//! (`snapshot_chunks`), all in one transaction. Heads written before chunking
//! carry their payload inline (chunk count 0) and still load.
//!
//! Records and snapshot heads store the journal format of their payload in a
//! `format` column; rows from before it read as format 1, its default (see
//! "Journal compatibility" in `surge_actors::journal`).

mod archive;
pub mod audit;
pub mod changes;
mod postgres;
mod sqlite;
mod writer;

pub use postgres::PostgresJournal;
pub use sqlite::SqliteJournal;

use changes::ChangeLog;

use std::sync::Arc;
use std::time::Duration;
use surge_actors::journal::Snapshot;
use surge_actors::{Journal, JournalError, MemoryJournal, ShardId};

/// Storage settings the backends need.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// `postgres://…`, `sqlite://path` or `memory://` (tests only: nothing survives).
    pub url: String,
    /// Connections in the pool (loads, snapshots); the writer holds one more.
    pub pool_connections_max: u32,
    /// How long to wait for a connection or a statement before giving up.
    pub timeout_ms: u64,
    /// Most records written in one statement.
    pub records_per_write_max: usize,
    /// Pruning keeps journal rows a change data capture cursor has not passed,
    /// unless they are more than this many events behind the snapshot pruned
    /// to (`cdc.lag_limit_events`).
    pub cdc_lag_limit_events: u64,
}

/// Opens the journal the URL names and migrates its schema.
pub async fn open(options: &StorageOptions) -> anyhow::Result<Arc<dyn Journal>> {
    Ok(open_with_changes(options).await?.0)
}

/// The journal, and what change data capture reads from it (`None` for the
/// in-memory journal, which keeps no changes).
pub async fn open_with_changes(
    options: &StorageOptions,
) -> anyhow::Result<(Arc<dyn Journal>, Option<Arc<dyn ChangeLog>>)> {
    let url = options.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let journal = Arc::new(PostgresJournal::open(options).await?);
        Ok((journal.clone(), Some(journal)))
    } else if url.starts_with("sqlite:") {
        let journal = Arc::new(SqliteJournal::open(options).await?);
        Ok((journal.clone(), Some(journal)))
    } else if url == "memory://" {
        Ok((Arc::new(MemoryJournal::new()), None))
    } else {
        anyhow::bail!(
            "unsupported storage url {url:?}: expected postgres://…, sqlite://… or memory://"
        )
    }
}

/// Runs the migrations of the backend the URL names, and nothing else.
pub async fn migrate(options: &StorageOptions) -> anyhow::Result<()> {
    open(options).await.map(|_| ())
}

pub(crate) fn timeout(options: &StorageOptions) -> Duration {
    Duration::from_millis(options.timeout_ms)
}

/// Turns a database error into the journal's retryable error.
pub(crate) fn unavailable(error: sqlx::Error) -> JournalError {
    JournalError::Unavailable(error.to_string())
}

/// Checksums are u64 in the engine and BIGINT in SQL: stored bit for bit.
pub(crate) fn checksum_to_sql(checksum: u64) -> i64 {
    checksum as i64
}

pub(crate) fn checksum_from_sql(checksum: i64) -> u64 {
    checksum as u64
}

/// Journal formats are u16 in the engine and INTEGER in SQL.
pub(crate) fn format_to_sql(format: u16) -> i32 {
    i32::from(format)
}

/// A stored format that no u16 holds is damage, not a newer Surge.
pub(crate) fn format_from_sql(
    shard: ShardId,
    what: &str,
    seq: i64,
    format: i32,
) -> Result<u16, JournalError> {
    u16::try_from(format).map_err(|_| {
        JournalError::Corrupt(format!(
            "shard {shard} {what} at sequence {seq}: format {format} is not a journal format"
        ))
    })
}

/// Most bytes of a snapshot's payload stored in one row. A whole snapshot in one
/// value hit PostgreSQL's 1 GB limit on a `bytea` at about ten million payments,
/// and binding it made the driver copy it into a buffer it grew by doubling, on the
/// shard's own thread: about a third of a second of stalled shard per 100 MB,
/// mostly spent faulting in fresh pages. A chunk is copied and sent on its own.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1 << 20;

/// A snapshot's payload cut into rows: (chunk index, bytes), in order.
pub(crate) fn snapshot_chunks(payload: &[u8]) -> impl Iterator<Item = (i32, &[u8])> {
    payload
        .chunks(SNAPSHOT_CHUNK_BYTES_MAX)
        .enumerate()
        // A chunk index beyond i32 would need a payload of 2^31 MiB.
        .map(|(index, chunk)| (index as i32, chunk))
}

/// How many chunks a head row announces for this payload.
pub(crate) fn snapshot_chunk_count(payload: &[u8]) -> i32 {
    payload.len().div_ceil(SNAPSHOT_CHUNK_BYTES_MAX) as i32
}

/// Puts a chunked snapshot's payload back together from its rows, read in chunk
/// order, and tells whether every announced chunk arrived.
pub(crate) struct ChunkAssembler {
    payload: Vec<u8>,
    next: i32,
    expected: i32,
}

impl ChunkAssembler {
    pub(crate) fn new(expected: i32, bytes: i64) -> Self {
        // Capped by what the chunks can hold: `bytes` comes from the database,
        // which may be damaged.
        let bytes_max = (expected.max(0) as usize).saturating_mul(SNAPSHOT_CHUNK_BYTES_MAX);
        Self {
            payload: Vec::with_capacity((bytes.max(0) as usize).min(bytes_max)),
            next: 0,
            expected,
        }
    }

    /// Takes the next row; false (and the snapshot is incomplete) on a gap.
    pub(crate) fn push(&mut self, index: i32, chunk: &[u8]) -> bool {
        if index != self.next || index >= self.expected {
            return false;
        }
        self.payload.extend_from_slice(chunk);
        self.next += 1;
        true
    }

    /// The whole payload, or `None` when chunks are missing.
    pub(crate) fn finish(self) -> Option<Vec<u8>> {
        (self.next == self.expected).then_some(self.payload)
    }
}

/// The snapshot if its checksum holds; a torn or corrupt snapshot is logged and
/// skipped, so that recovery falls back to the one before (whose journal is kept).
/// A snapshot in a format this binary does not read is never skipped: it is
/// returned as it is, and decoding it stops recovery with a clear error instead
/// of falling back past what a newer Surge wrote.
pub(crate) fn valid_snapshot(
    shard: ShardId,
    seq: u64,
    format: u16,
    payload: Option<Vec<u8>>,
    checksum: u64,
    base_seq: Option<u64>,
) -> Option<Snapshot> {
    if !surge_actors::journal::format_is_readable(format) {
        return Some(Snapshot {
            shard,
            seq,
            format,
            payload: payload.unwrap_or_default(),
            checksum,
            base_seq,
        });
    }
    let Some(payload) = payload else {
        tracing::error!(%shard, seq, "snapshot chunks missing; using an older snapshot");
        return None;
    };
    if surge_actors::journal::checksum(&payload) != checksum {
        tracing::error!(%shard, seq, "snapshot checksum mismatch; using an older snapshot");
        return None;
    }
    Some(Snapshot {
        shard,
        seq,
        format,
        payload,
        checksum,
        base_seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_cut_into_chunks_is_put_back_together_exactly() {
        let payload: Vec<u8> = (0..SNAPSHOT_CHUNK_BYTES_MAX * 2 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let count = snapshot_chunk_count(&payload);
        assert_eq!(count, 3);
        let mut assembler = ChunkAssembler::new(count, payload.len() as i64);
        for (index, chunk) in snapshot_chunks(&payload) {
            assert!(assembler.push(index, chunk));
        }
        assert_eq!(assembler.finish(), Some(payload));
    }

    #[test]
    fn a_missing_or_extra_chunk_leaves_the_payload_incomplete() {
        let payload = vec![7u8; SNAPSHOT_CHUNK_BYTES_MAX * 2];
        let chunks: Vec<_> = snapshot_chunks(&payload).collect();

        let mut gap = ChunkAssembler::new(2, 0);
        assert!(!gap.push(chunks[1].0, chunks[1].1));
        assert_eq!(gap.finish(), None);

        let mut short = ChunkAssembler::new(3, 0);
        for (index, chunk) in &chunks {
            assert!(short.push(*index, chunk));
        }
        assert_eq!(short.finish(), None);

        let mut extra = ChunkAssembler::new(1, 0);
        assert!(extra.push(chunks[0].0, chunks[0].1));
        assert!(!extra.push(chunks[1].0, chunks[1].1));
    }

    #[test]
    fn an_empty_payload_has_no_chunks() {
        assert_eq!(snapshot_chunk_count(&[]), 0);
        assert_eq!(snapshot_chunks(&[]).count(), 0);
    }
}
