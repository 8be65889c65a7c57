//! The write-ahead journal: the trait every backend implements, the record format,
//! recovery from snapshot plus records, and an in-memory journal for tests,
//! benchmarks and the simulator.
//!
//! A record is one batch of one shard: its events encoded with MessagePack, the
//! range of sequence numbers they take, the journal format they are written in,
//! and an xxh3 checksum of the payload. Records are keyed by (shard, epoch,
//! sequence): the epoch is the shard's ownership term, so that a stale owner's
//! write can be refused when shards are spread over several processes.
//!
//! # Journal compatibility
//!
//! A journal outlives the binary that wrote it: a shard starts from the newest
//! snapshot and the records after it, whichever Surge wrote them. The bytes are
//! pinned by a golden test (`actors/tests/journal_format.rs`): one event of every
//! variant and a small snapshot, compared with the files in `actors/tests/golden/`
//! and decoded back from them.
//!
//! What the bytes are: rmp-serde's default encoding of `Vec<Event>` (a record) or
//! of [`State`] (a snapshot). It writes an enum variant by its *name*, a struct or
//! struct variant as an array of its fields in declaration order (no field names),
//! decimals, ids and currency codes as strings. The same goes for every type an
//! event or the state holds (`model`, `order`, `rejection`, `domain`). The
//! checksum is xxh3-64 of the payload. The format number itself is stored beside
//! the payload (a `format` column), not in it.
//!
//! The rules:
//! * `Event` variants are only added at the end of the enum. (The encoding names a
//!   variant, so its position does not reach the bytes today; appending keeps the
//!   indices stable should that ever change. The order variants were once
//!   inserted before `RecordsPruned`, harmlessly for that reason.)
//! * No variant of `Event`, or of an enum inside an event or the state, is ever
//!   renamed or removed: its name is what the journal holds.
//! * No field is ever removed, reordered, inserted between others or changed in
//!   type: fields are positions in an array.
//! * Whatever changes the bytes, a new variant or field included, bumps
//!   [`JOURNAL_FORMAT_VERSION`], adds a line to the list below, and blesses the
//!   golden files (`SURGE_BLESS=1 cargo test -p surge-actors --test
//!   journal_format`); the golden test fails until then. Records and snapshots
//!   share one number: they share their types.
//! * Every record and snapshot carries the format it was written in. A binary
//!   writes [`JOURNAL_FORMAT_VERSION`] and reads [`JOURNAL_FORMAT_OLDEST`] through
//!   it; a change that older bytes still decode under (an appended variant) keeps
//!   the oldest, one they do not either keeps a decoder for the old layout or
//!   raises the oldest (and an upgrade across it then needs every shard
//!   snapshotted, with no record after, in a format still read, as a graceful
//!   shutdown leaves it).
//!
//! What binaries do:
//! * A newer binary replays an older journal, of any format it reads.
//! * A binary that finds a record or snapshot of a format it does not read (one
//!   written by a newer Surge) refuses it with [`JournalError::UnsupportedFormat`]:
//!   recovery stops loudly and the shard does not start, as with a corrupt
//!   journal. Nothing is skipped or rewritten, so going back to an older binary
//!   after one that wrote a newer format takes the database from before it.
//! * Binaries from before the format number read no `format` column: on a newer
//!   format they fail as on a corrupt journal (an unknown variant) or read what
//!   they understand. Rows they write get the column's default, 1, which is what
//!   they write.
//!
//! Formats:
//! * 1: every journal written before the format number, and every row stored
//!   before the `format` column existed (its default). Its first seventeen
//!   variants run from `AccountCreated` to `RecordsPruned` (the order ones,
//!   `OrderCreated` to `LineStepApplied`, were inserted before `RecordsPruned`);
//!   appended after them since, in this order: `PaymentStepAppliedLocally`,
//!   `PaymentRunLocally`, `OrderRefusedLocally`, `OrderRunLocally`,
//!   `OrderRejectedLocally`.
//! * 2: appends `EntitiesArchived` and `EntityRecalled` (finished entities leave
//!   memory for the archive and come back from it), and the state's `finished`
//!   table and `archived_keys` filter as its last fields, defaulted, so a format
//!   1 snapshot decodes with none queued and an empty filter. Archived entities are stored in this encoding too, with the
//!   format beside them. Format 1 is still read.
//! * 3: appends three fields to the `archived_keys` filter: the sequence number
//!   of its base, the hashes inserted since, and the size of the layer they
//!   went to (a delta snapshot: see `crate::filter`); a format 2 filter decodes
//!   as a whole one. Formats 1 and 2 are still read; a binary of format 2 must
//!   not read a delta (it would take it for an empty filter), which the number
//!   tells it.
//! * 4: saga steps apply once whatever the delay (see `crate::model::StepOrigin`):
//!   appends `StepFloorRaised`; appends a defaulted `origin` to `StepApplied`,
//!   `LineStepApplied` and the step record, and a defaulted `stage_seq` to
//!   payments and orders; and appends the state's `step_floors` and
//!   `step_stamps` tables, defaulted. Older records decode as unstamped (their
//!   records go to the archive, as they did). Formats 1 to 3 are still read; a
//!   binary of format 3 must not read format 4, whose floors it would ignore and
//!   whose stamped records it would keep forever.

use crate::archive::{ArchiveKey, Archived};
use crate::event::Event;
use crate::notice::Notice;
use crate::router::ShardId;
use crate::state::State;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The journal format this binary writes (see "Journal compatibility" above).
pub const JOURNAL_FORMAT_VERSION: u16 = 4;

/// The oldest journal format this binary reads.
pub const JOURNAL_FORMAT_OLDEST: u16 = 1;

/// Whether this binary reads records and snapshots written in `format`.
pub fn format_is_readable(format: u16) -> bool {
    (JOURNAL_FORMAT_OLDEST..=JOURNAL_FORMAT_VERSION).contains(&format)
}

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
    /// A record or snapshot is in a journal format this binary does not read,
    /// most likely written by a newer Surge. Never skipped: recovery stops loudly.
    #[error(
        "journal format not supported: shard {shard} {what} at sequence {seq} {}",
        format_mismatch(*.found, *.known)
    )]
    UnsupportedFormat {
        /// `"record"` or `"snapshot"`.
        what: &'static str,
        shard: ShardId,
        /// The record's first sequence number, or the snapshot's.
        seq: u64,
        /// The format it was written in.
        found: u16,
        /// The newest format this binary reads ([`JOURNAL_FORMAT_VERSION`]).
        known: u16,
    },
}

/// The second half of an `UnsupportedFormat` message.
fn format_mismatch(found: u16, known: u16) -> String {
    let reads = if JOURNAL_FORMAT_OLDEST == known {
        format!("format {known}")
    } else {
        format!("formats {JOURNAL_FORMAT_OLDEST} to {known}")
    };
    if found > known {
        format!("was written by a newer Surge (format {found}; this binary reads {reads})")
    } else {
        format!("is in format {found}, which this binary does not read (it reads {reads})")
    }
}

/// The error for a record or snapshot whose format is not readable, if it is not.
fn check_format(
    what: &'static str,
    shard: ShardId,
    seq: u64,
    found: u16,
) -> Result<(), JournalError> {
    if format_is_readable(found) {
        return Ok(());
    }
    Err(JournalError::UnsupportedFormat {
        what,
        shard,
        seq,
        found,
        known: JOURNAL_FORMAT_VERSION,
    })
}

/// Room a notice takes in MessagePack, on average (a guess to size the buffer).
const NOTICE_BYTES_GUESS: usize = 96;

/// The notices stored beside the record of shard `shard` starting at
/// `first_seq` (see [`JournalRecord::with_changes`]), verified.
pub fn decode_changes(
    shard: ShardId,
    first_seq: u64,
    changes: &[u8],
) -> Result<Vec<Notice>, JournalError> {
    let corrupt = |why: String| {
        JournalError::Corrupt(format!(
            "shard {shard} changes of record {first_seq}: {why}"
        ))
    };
    let Some((sum, body)) = changes.split_first_chunk::<8>() else {
        return Err(corrupt(format!("{} bytes, no checksum", changes.len())));
    };
    if checksum(body) != u64::from_le_bytes(*sum) {
        return Err(corrupt("checksum mismatch".to_owned()));
    }
    rmp_serde::from_slice(body).map_err(|error| corrupt(error.to_string()))
}

/// One batch of one shard's events, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub shard: ShardId,
    pub epoch: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// The journal format of `payload` ([`JOURNAL_FORMAT_VERSION`] when encoded
    /// here; as stored when loaded).
    pub format: u16,
    /// MessagePack of `Vec<Event>`.
    pub payload: Vec<u8>,
    /// xxh3-64 of `payload`.
    pub checksum: u64,
    /// With change data capture on, what the batch's notices were (see
    /// [`JournalRecord::with_changes`]); `None` otherwise, and when loaded for
    /// recovery, which does not need them.
    #[serde(default)]
    pub changes: Option<Vec<u8>>,
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
            format: JOURNAL_FORMAT_VERSION,
            checksum: checksum(&payload),
            payload,
            changes: None,
        }
    }

    /// Stores the batch's notices beside its events, for change data capture:
    /// the xxh3-64 of the rest (8 bytes, little-endian), then MessagePack of
    /// `Vec<Notice>` (variants by name, fields by position, as events). Read
    /// back by [`decode_changes`].
    pub fn with_changes(mut self, notices: &[Notice]) -> Self {
        let mut changes = vec![0; 8];
        changes.reserve(notices.len().saturating_mul(NOTICE_BYTES_GUESS));
        notices
            .serialize(&mut rmp_serde::Serializer::new(&mut changes))
            .expect("notices encode to MessagePack");
        let sum = checksum(&changes[8..]);
        changes[..8].copy_from_slice(&sum.to_le_bytes());
        self.changes = Some(changes);
        self
    }

    /// Decodes and verifies the record; a format this binary does not read is
    /// refused before anything else is looked at.
    pub fn decode(&self) -> Result<Vec<Event>, JournalError> {
        check_format("record", self.shard, self.first_seq, self.format)?;
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
    /// The journal format of `payload`, as for a record.
    pub format: u16,
    /// MessagePack of `State`.
    pub payload: Vec<u8>,
    pub checksum: u64,
    /// The snapshot whose filter of archived keys this one's extends (see
    /// `crate::filter`): recovery reads it too, and storage keeps it as long as
    /// it keeps this one. `None`: this one holds its filter whole.
    pub base_seq: Option<u64>,
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
        // The filter of archived keys is one fixed block of bytes (or a delta's
        // hashes), counted as such.
        let capacity = state
            .entries()
            .saturating_mul(SNAPSHOT_BYTES_PER_ENTRY_GUESS)
            .saturating_add(state.archived_keys.encoded_bytes() as usize);
        let mut payload = Vec::with_capacity(capacity);
        // State is plain data; encoding it into a Vec cannot fail.
        state
            .serialize(&mut rmp_serde::Serializer::new(&mut payload))
            .expect("state encodes to MessagePack");
        Self {
            shard,
            seq: state.last_seq,
            format: JOURNAL_FORMAT_VERSION,
            checksum: checksum(&payload),
            payload,
            base_seq: state.archived_keys.delta_base(),
        }
    }

    /// Decodes and verifies the snapshot, refusing a format this binary does
    /// not read first.
    pub fn decode(&self) -> Result<State, JournalError> {
        check_format("snapshot", self.shard, self.seq, self.format)?;
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
        if state.archived_keys.delta_base() != self.base_seq {
            return Err(JournalError::Corrupt(format!(
                "shard {} snapshot at {} is stored with base {:?} but names {:?}",
                self.shard,
                self.seq,
                self.base_seq,
                state.archived_keys.delta_base()
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
    /// The snapshot `snapshot.base_seq` names, when it names one.
    pub base: Option<Snapshot>,
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

    /// Stores finished entities in the archive, all or none. An entity stored
    /// before stays as it was (a finished entity never changes, so a second
    /// round of the same one after a restart carries the same entity).
    fn archive(
        &self,
        shard: ShardId,
        entities: Vec<Archived>,
    ) -> BoxFuture<'static, Result<(), JournalError>>;

    /// What the archive holds of each key, in the order asked (`None`: nothing).
    fn lookup(&self, keys: Vec<ArchiveKey>) -> BoxFuture<'static, Result<Lookups, JournalError>>;

    /// Whether storage answers right now (for readiness checks).
    fn ping(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The archive's answer to a lookup: each key asked for, with what it holds.
pub type Lookups = Vec<(ArchiveKey, Option<Archived>)>;

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
    archive: Arc<Mutex<HashMap<ArchiveKey, (ShardId, Archived)>>>,
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

    /// Everything in the archive, with the shard that archived it, in key order.
    pub fn archived_entities(&self) -> Vec<(ShardId, Archived)> {
        let archive = self.archive.lock().expect("archive lock poisoned");
        let mut entities: Vec<(ShardId, Archived)> = archive.values().cloned().collect();
        entities.sort_by_key(|(_, entity)| entity.key());
        entities
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
                let base = snapshot
                    .as_ref()
                    .and_then(|snap| snap.base_seq)
                    .and_then(|base| s.snapshots.iter().find(|snap| snap.seq == base).cloned());
                Recovered {
                    base,
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
                s.snapshots.retain(|kept| kept.seq != snapshot.seq);
                s.snapshots.push(snapshot);
                s.snapshots.sort_by_key(|snap| snap.seq);
                // Keep the last two snapshots and the bases they name, as the
                // durable backends do.
                let newest = &s.snapshots[s.snapshots.len().saturating_sub(2)..];
                let keep: Vec<u64> = newest
                    .iter()
                    .flat_map(|snap| [Some(snap.seq), snap.base_seq])
                    .flatten()
                    .collect();
                s.snapshots.retain(|kept| keep.contains(&kept.seq));
            })
        });
        Box::pin(async move { result })
    }

    fn archive(
        &self,
        shard: ShardId,
        entities: Vec<Archived>,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let result = self.check().map(|()| {
            let mut archive = self.archive.lock().expect("archive lock poisoned");
            for entity in entities {
                archive.entry(entity.key()).or_insert((shard, entity));
            }
        });
        Box::pin(async move { result })
    }

    fn lookup(&self, keys: Vec<ArchiveKey>) -> BoxFuture<'static, Result<Lookups, JournalError>> {
        let result = self.check().map(|()| {
            let archive = self.archive.lock().expect("archive lock poisoned");
            keys.into_iter()
                .map(|key| {
                    let entity = archive.get(&key).map(|(_, entity)| entity.clone());
                    (key, entity)
                })
                .collect()
        });
        Box::pin(async move { result })
    }
}
