//! Durable journal backends: PostgreSQL (production) and SQLite (embedded default).
//!
//! Both implement `surge_actors::Journal` with the same schema (`migrations/`),
//! run their migrations at start, and share one group-commit writer: every append
//! from every shard goes to a single task that writes whatever has queued up in one
//! statement or transaction, then acknowledges all of it.

mod postgres;
mod sqlite;
mod writer;

pub use postgres::PostgresJournal;
pub use sqlite::SqliteJournal;

use std::sync::Arc;
use std::time::Duration;
use surge_actors::{Journal, JournalError, MemoryJournal};

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
}

/// Opens the journal the URL names and migrates its schema.
pub async fn open(options: &StorageOptions) -> anyhow::Result<Arc<dyn Journal>> {
    let url = options.url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresJournal::open(options).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteJournal::open(options).await?))
    } else if url == "memory://" {
        Ok(Arc::new(MemoryJournal::new()))
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
