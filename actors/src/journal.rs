//! The write-ahead journal: the trait every backend implements, the record format,
//! recovery from snapshot plus records, and an in-memory journal for tests,
//! benchmarks and the simulator.
//!
//! A record is one batch of one shard: its events encoded with MessagePack, the
//! range of sequence numbers they take, and an xxh3 checksum of the payload.
//! Records are keyed by (shard, epoch, sequence): the epoch is the shard's
//! ownership term, so that a stale owner's write can be refused when shards are
//! spread over several processes.

use crate::event::Event;
use crate::router::ShardId;
use crate::state::State;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why the journal could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Storage is unreachable, slow or refused the write; whether a failed append
    /// is durable is unknown. Retryable.
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// The journal holds something that cannot be right (gap, duplicate, bad
    /// checksum, undecodable payload). Never skipped: recovery stops loudly.
    #[error("journal corrupt: {0}")]
    Corrupt(String),
    /// Another owner holds a newer epoch for this shard.
    #[error("journal write fenced: shard {shard} is owned at epoch {current}, not {attempted}")]
    Fenced {
        shard: ShardId,
        attempted: u64,
        current: u64,
    },
}

/// One batch of one shard's events, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub shard: ShardId,
    pub epoch: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// MessagePack of `Vec<Event>`.
    pub payload: Vec<u8>,
    /// xxh3-64 of `payload`.
    pub checksum: u64,
}

impl JournalRecord {
    /// Encodes a batch whose first event gets sequence number `first_seq`.
    pub fn encode(shard: ShardId, epoch: u64, first_seq: u64, events: &[Event]) -> Self {
        assert!(
            !events.is_empty(),
            "a journal record holds at least one event"
        );
        // Events are plain data (strings, integers, decimals); encoding them into a
        // Vec cannot fail.
        let mut payload = Vec::with_capacity(events.len().saturating_mul(EVENT_BYTES_GUESS));
        events
            .serialize(&mut rmp_serde::Serializer::new(&mut payload))
            .expect("events encode to MessagePack");
        Self {
            shard,
            epoch,
            first_seq,
            last_seq: first_seq + events.len() as u64 - 1,
            checksum: checksum(&payload),
            payload,
        }
    }

    /// Decodes and verifies the record.
    pub fn decode(&self) -> Result<Vec<Event>, JournalError> {
        if checksum(&self.payload) != self.checksum {
            return Err(JournalError::Corrupt(format!(
                "shard {} record {}..={}: checksum mismatch",
                self.shard, self.first_seq, self.last_seq
            )));
        }
        let events: Vec<Event> = rmp_serde::from_slice(&self.payload).map_err(|error| {
            JournalError::Corrupt(format!(
                "shard {} record {}..={}: {error}",
                self.shard, self.first_seq, self.last_seq
            ))
        })?;
        if events.len() as u64 != self.last_seq + 1 - self.first_seq {
            return Err(JournalError::Corrupt(format!(
                "shard {} record {}..={} holds {} events",
                self.shard,
                self.first_seq,
                self.last_seq,
                events.len()
            )));
        }
        Ok(events)
    }
}

/// A shard's whole state at sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub shard: ShardId,
    pub seq: u64,
    /// MessagePack of `State`.
    pub payload: Vec<u8>,
    pub checksum: u64,
}

/// Room reserved per event when a batch is encoded (most take 60 to 150 bytes).
const EVENT_BYTES_GUESS: usize = 128;

/// Room reserved per state entry when a snapshot is encoded (a payment takes about
/// 100 bytes, an order with its history a few hundred).
const SNAPSHOT_BYTES_PER_ENTRY_GUESS: usize = 256;

impl Snapshot {
    pub fn encode(shard: ShardId, state: &State) -> Self {
        // Sized up front: growing a buffer of a hundred megabytes by doubling copied
        // it again and again and faulted in fresh pages for every copy (a tenth of
        // the machine during a flash sale). Capacity that is never written is never
        // touched, so a generous guess costs nothing.
        let capacity = state
            .entries()
            .saturating_mul(SNAPSHOT_BYTES_PER_ENTRY_GUESS);
        let mut payload = Vec::with_capacity(capacity);
        // State is plain data; encoding it into a Vec cannot fail.
        state
            .serialize(&mut rmp_serde::Serializer::new(&mut payload))
            .expect("state encodes to MessagePack");
        Self {
            shard,
            seq: state.last_seq,
            checksum: checksum(&payload),
            payload,
        }
    }

    pub fn decode(&self) -> Result<State, JournalError> {
        if checksum(&self.payload) != self.checksum {
            return Err(JournalError::Corrupt(format!(
                "shard {} snapshot at {}: checksum mismatch",
                self.shard, self.seq
            )));
        }
        let state: State = rmp_serde::from_slice(&self.payload).map_err(|error| {
            JournalError::Corrupt(format!(
                "shard {} snapshot at {}: {error}",
                self.shard, self.seq
            ))
        })?;
        if state.last_seq != self.seq {
            return Err(JournalError::Corrupt(format!(
                "shard {} snapshot claims {} but holds {}",
                self.shard, self.seq, state.last_seq
            )));
        }
        Ok(state)
    }
}

/// What a journal holds for one shard: the newest snapshot, if any, and the records
/// after it, in sequence order.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    pub records: Vec<JournalRecord>,
}

pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Storage for shard journals and snapshots. Implementations: the in-memory
/// journal here; PostgreSQL and SQLite in the server crate.
pub trait Journal: Send + Sync + 'static {
    /// Takes ownership of a shard for a new epoch (greater than any before).
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>>;

    /// Makes a batch durable. Resolves only once it is (or failed).
    fn append(&self, record: JournalRecord) -> BoxFuture<'static, Result<(), JournalError>>;

    /// The newest snapshot of a shard and every record after it.
    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Recovered, JournalError>>;

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'static, Result<(), JournalError>>;

    /// Whether storage answers right now (for readiness checks).
    fn ping(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
}

#[derive(Default)]
struct MemoryShard {
    epoch: u64,
    records: Vec<JournalRecord>,
    snapshots: Vec<Snapshot>,
}

/// A journal in memory: durable for as long as the process lives. Used by tests,
/// benchmarks and the simulator; it can be told to fail, like a database outage.
#[derive(Clone, Default)]
pub struct MemoryJournal {
    shards: Arc<Mutex<HashMap<ShardId, MemoryShard>>>,
    failing: Arc<AtomicBool>,
}

impl MemoryJournal {
    pub fn new() -> Self {
        Self::default()
    }

    /// While set, every call fails with `Unavailable`.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn records(&self, shard: ShardId) -> Vec<JournalRecord> {
        let shards = self.shards.lock().expect("journal lock poisoned");
        shards
            .get(&shard)
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }

    fn check(&self) -> Result<(), JournalError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(JournalError::Unavailable("injected outage".into()));
        }
        Ok(())
    }

    fn with_shard<T>(&self, shard: ShardId, f: impl FnOnce(&mut MemoryShard) -> T) -> T {
        let mut shards = self.shards.lock().expect("journal lock poisoned");
        f(shards.entry(shard).or_default())
    }
}

impl Journal for MemoryJournal {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>> {
        let result = self.check().map(|()| {
            self.with_shard(shard, |s| {
                s.epoch += 1;
                s.epoch
            })
        });
        Box::pin(async move { result })
    }

    fn append(&self, record: JournalRecord) -> BoxFuture<'static, Result<(), JournalError>> {
        let result = self.check().and_then(|()| {
            self.with_shard(record.shard, |s| {
                if record.epoch < s.epoch {
                    return Err(JournalError::Fenced {
                        shard: record.shard,
                        attempted: record.epoch,
                        current: s.epoch,
                    });
                }
                let expected = s.records.last().map_or_else(
                    || s.snapshots.last().map_or(1, |snap| snap.seq + 1),
                    |last| last.last_seq + 1,
                );
                if record.first_seq != expected {
                    return Err(JournalError::Corrupt(format!(
                        "shard {}: append at {} but next sequence is {expected}",
                        record.shard, record.first_seq
                    )));
                }
                s.records.push(record);
                Ok(())
            })
        });
        Box::pin(async move { result })
    }

    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Recovered, JournalError>> {
        let result = self.check().map(|()| {
            self.with_shard(shard, |s| {
                let snapshot = s.snapshots.last().cloned();
                let after = snapshot.as_ref().map_or(0, |snap| snap.seq);
                Recovered {
                    records: s
                        .records
                        .iter()
                        .filter(|r| r.last_seq > after)
                        .cloned()
                        .collect(),
                    snapshot,
                }
            })
        });
        Box::pin(async move { result })
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'static, Result<(), JournalError>> {
        let result = self.check().map(|()| {
            self.with_shard(snapshot.shard, |s| {
                s.snapshots.push(snapshot);
                // Keep the last two snapshots, as the durable backends do.
                let excess = s.snapshots.len().saturating_sub(2);
                s.snapshots.drain(..excess);
            })
        });
        Box::pin(async move { result })
    }
}
