//! The Surge engine: domain types, pure shard state machines, the shard actor, the
//! router, supervision and the journal trait. No HTTP and no SQL live here.
//!
//! # Layout
//!
//! * [`domain`]: ids, money and quantities, parsed at the edge.
//! * [`rejection`]: the exhaustive list of business refusals and their codes.
//! * [`command`]: what clients ask (commands, queries) and what they get back.
//! * [`event`]: the events that change state and fill the journal.
//! * [`model`]: the entities a shard owns and the saga records.
//! * [`order`]: the order saga's progress and the item side of its steps.
//! * [`archive`]: finished entities that leave memory once the archive has them.
//! * [`notice`]: what feeds hear of durable changes.
//! * [`state`]: a shard's state and `apply`.
//! * [`decide`]: the pure business rules, `decide(state, command, now)`.
//! * [`shard`]: the shard core: batches, sagas, waiting clients, no I/O.
//! * [`table`]: maps with undo logs, so a failed batch leaves no trace.
//! * [`filter`]: the fixed-memory filter of archived keys, shared with snapshots.
//! * [`router`]: the stable id → shard mapping.
//! * [`journal`]: the journal trait, its record format and the in-memory journal.
//! * [`recovery`]: rebuilding a shard core from the journal (actor and simulator).
//! * [`sim`]: the deterministic simulator: all shards, a simulated network, clock,
//!   journal, crashes and clients, checked against the invariants of docs/ARCHITECTURE.md.
//! * [`status`]: what the engine reports: errors, observer hooks, shard states.
//! * [`actor`]: the actix shard actor: mailbox, group commit, supervision.
//! * [`engine`]: the handle the server uses to start shards and send them work.

pub mod actor;
pub mod admission;
pub mod archive;
pub mod command;
pub mod decide;
pub mod domain;
pub mod engine;
pub mod event;
pub mod filter;
pub mod journal;
pub mod model;
pub mod notice;
pub mod order;
pub mod recovery;
pub mod rejection;
pub mod router;
pub mod shard;
pub mod sim;
pub mod state;
pub mod status;
pub mod table;

pub use command::{Command, Query, Reply};
pub use engine::{Engine, EngineConfig, EngineError, ShardStatus};
pub use journal::{Journal, JournalError, MemoryJournal};
pub use rejection::Rejection;
pub use router::{Router, ShardId};
