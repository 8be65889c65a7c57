//! What the engine reports: its errors, the observer hooks metrics attach to,
//! and each shard's state and counters for operators. Plain types, shared by the
//! shard actor and the engine handle.

use crate::notice::Notice;
use crate::router::ShardId;
use crate::state::State;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

/// Why the engine could not give an answer. Business refusals are not errors: they
/// come back as [`Reply::Rejected`](crate::command::Reply::Rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The shard's mailbox is full: retry later (503 `overloaded`).
    #[error("the shard is overloaded")]
    Overloaded,
    /// Whether the request took effect is unknown (shard restarted mid-batch,
    /// storage failed or timed out): retrying with the same id is safe
    /// (503 `retry`).
    #[error("the outcome is unknown; retry with the same id")]
    Retry,
    /// The engine is stopping.
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// Hooks for metrics; the engine crate itself knows nothing of Prometheus.
pub trait EngineObserver: Send + Sync + 'static {
    fn batch_flushed(&self, _shard: ShardId, _events: usize, _elapsed: Duration, _ok: bool) {}
    fn recovered(&self, _shard: ShardId, _elapsed: Duration, _events_replayed: usize) {}
    fn mailbox_sent(&self, _shard: ShardId) {}
    fn mailbox_received(&self, _shard: ShardId) {}
    fn snapshot_written(&self, _shard: ShardId, _bytes: usize, _elapsed: Duration) {}
    /// Changes that are durable, in the order they happened on `shard`, for feeds.
    /// Called on the shard's thread: must not block.
    fn notices(&self, _shard: ShardId, _notices: &[Notice]) {}
}

/// Observer that ignores everything.
pub struct NoObserver;

impl EngineObserver for NoObserver {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ShardState {
    Recovering = 0,
    Running = 1,
    /// A journal write failed; writes are refused until it re-reads the journal.
    Degraded = 2,
    /// Panicked; the supervisor is restarting it.
    Crashed = 3,
    /// Cannot recover (corrupt journal); needs an operator.
    Failed = 4,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Recovering => "recovering",
            ShardState::Running => "running",
            ShardState::Degraded => "degraded",
            ShardState::Crashed => "crashed",
            ShardState::Failed => "failed",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => ShardState::Recovering,
            1 => ShardState::Running,
            2 => ShardState::Degraded,
            3 => ShardState::Crashed,
            _ => ShardState::Failed,
        }
    }
}

/// Counters a shard publishes for operators, readable without a message.
#[derive(Debug, Default)]
pub struct ShardStats {
    state: AtomicU8,
    pub restarts: AtomicU64,
    pub last_seq: AtomicU64,
    pub snapshot_seq: AtomicU64,
    pub recovery_ms: AtomicU64,
    pub mailbox_len: AtomicU64,
    /// How long the last client message the shard dequeued had waited, in µs.
    pub queue_delay_us: AtomicU64,
    pub accounts: AtomicU64,
    pub items: AtomicU64,
    pub payments: AtomicU64,
    pub orders: AtomicU64,
    pub open_entities: AtomicU64,
    pub tables: [AtomicU64; TABLE_COUNTS],
}

/// How many of the state's other tables `ShardStats::tables` counts.
pub const TABLE_COUNTS: usize = 7;

impl ShardStats {
    pub fn set_state(&self, state: ShardState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> ShardState {
        ShardState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub(crate) fn update_counts(&self, state: &State) {
        self.accounts
            .store(state.accounts.len() as u64, Ordering::Relaxed);
        self.items
            .store(state.items.len() as u64, Ordering::Relaxed);
        self.payments
            .store(state.payments.len() as u64, Ordering::Relaxed);
        self.orders
            .store(state.orders.len() as u64, Ordering::Relaxed);
        self.open_entities
            .store(state.open_entities() as u64, Ordering::Relaxed);
        let tables = [
            state.reservations.len() as u64,
            state.ops.len() as u64,
            state.steps.len() as u64,
            state.timers.len() as u64,
            state.finished_queue.len() as u64,
            state.archived_keys.bytes(),
            state.archived_keys.keys(),
        ];
        for (counter, value) in self.tables.iter().zip(tables) {
            counter.store(value, Ordering::Relaxed);
        }
    }

    /// What `update_counts` last saw of the other tables.
    pub fn tables(&self) -> ShardTables {
        let [reservations, operation_records, step_records, timers, archive_queue, archived_filter_bytes, archived_filter_keys] =
            self.tables
                .each_ref()
                .map(|counter| counter.load(Ordering::Relaxed));
        ShardTables {
            reservations,
            operation_records,
            step_records,
            timers,
            archive_queue,
            archived_filter_bytes,
            archived_filter_keys,
        }
    }
}

/// The sizes of a shard's tables beyond accounts, items, payments and orders:
/// what an operator watches to see where a shard's memory goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardTables {
    /// Reservations in memory (held, or finished and waiting for the archive).
    pub reservations: u64,
    /// Idempotency records of operations in memory.
    pub operation_records: u64,
    /// Saga step records in memory.
    pub step_records: u64,
    /// Pending deadlines (expiries, resends, prunes).
    pub timers: u64,
    /// Finished entities and records waiting for the archive.
    pub archive_queue: u64,
    /// The filter of archived keys: its memory, and the keys it holds (past
    /// about `archived_filter_bytes * 8 / 14` its false positives climb).
    pub archived_filter_bytes: u64,
    pub archived_filter_keys: u64,
}

/// One shard as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    pub id: ShardId,
    pub state: ShardState,
    pub restarts: u64,
    pub last_seq: u64,
    pub snapshot_seq: u64,
    pub mailbox_len: u64,
    /// How long the last client message the shard dequeued had waited, in µs.
    pub queue_delay_us: u64,
    pub accounts: u64,
    pub items: u64,
    pub payments: u64,
    pub orders: u64,
    /// Open payments, orders and reservations in memory, and the ceiling.
    pub open_entities: u64,
    pub open_entities_max: u64,
    pub tables: ShardTables,
}
