//! Finished entities: what leaves a shard's memory once it is durable in the
//! archive (the journal database's indexed store), and the keys it is found by.
//!
//! A payment, order or reservation that reaches a final state can never change
//! again. Once its batch is durable the shard hands it to the archive; once the
//! archive has stored it, the shard journals `Event::EntitiesArchived` and the
//! entity leaves memory. A later command that names it (a retry, a capture of a
//! settled payment) waits while the shard looks it up, and the entity comes back
//! by `Event::EntityRecalled`, so every rule decides on it exactly as before.
//!
//! Idempotency records of operations (`State::ops`) and saga steps
//! (`State::steps`) go the same way: final from the moment they are written (an
//! active hold's once it closes), they stay in memory for the same short window,
//! and a retry or resent step after it finds its record in the archive.

use crate::domain::{OrderId, PaymentId};
use crate::model::{
    OpKey, OpOutcome, OpRecord, Payment, Reservation, ReservationKey, SagaId, StepKey, StepOutcome,
    StepRecord, StepTag,
};
use crate::order::Order;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How an archived entity is found: by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ArchiveKey {
    Payment(PaymentId),
    Order(OrderId),
    Reservation(ReservationKey),
    /// An operation's idempotency record (`State::ops`): final once written.
    Op(OpKey),
    /// A saga step's record on the shard that applied it (`State::steps`): final
    /// once written, except an active hold's, which is final once closed.
    Step(StepKey),
}

impl ArchiveKey {
    /// The kind's name, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            ArchiveKey::Payment(_) => "payment",
            ArchiveKey::Order(_) => "order",
            ArchiveKey::Reservation(_) => "reservation",
            ArchiveKey::Op(_) => "op",
            ArchiveKey::Step(_) => "step",
        }
    }

    /// The key's hash in the filter of archived keys (`State::archived_keys`):
    /// fixed seeds, so that a snapshot's filter reads the same in any process.
    pub fn filter_hash(&self) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed;
        match self {
            ArchiveKey::Payment(id) => xxh3_64_with_seed(id.as_str().as_bytes(), 1),
            ArchiveKey::Order(id) => xxh3_64_with_seed(id.as_str().as_bytes(), 2),
            ArchiveKey::Reservation(key) => xxh3_64_with_seed(
                key.id.as_str().as_bytes(),
                xxh3_64_with_seed(key.sku.as_str().as_bytes(), 3),
            ),
            ArchiveKey::Op(key) => xxh3_64_with_seed(key.0.as_bytes(), 4),
            ArchiveKey::Step(key) => step_filter_hash(&key.saga, key.tag),
        }
    }

    /// The id within its kind, as stored: a reservation is `sku/id` (neither may
    /// contain a slash).
    pub fn id_text(&self) -> String {
        match self {
            ArchiveKey::Payment(id) => id.as_str().to_owned(),
            ArchiveKey::Order(id) => id.as_str().to_owned(),
            ArchiveKey::Reservation(key) => format!("{}/{}", key.sku, key.id),
            ArchiveKey::Op(key) => key.0.clone(),
            ArchiveKey::Step(key) => key.text(),
        }
    }
}

/// A step key's hash in the filter of archived keys, from its parts: the saga's
/// id under a seed made of the saga's kind and the tag, so that the check every
/// first step makes builds neither a key nor its text.
pub fn step_filter_hash(saga: &SagaId, tag: StepTag) -> u64 {
    let (kind, id) = match saga {
        SagaId::Payment(id) => (5u64, id.as_str()),
        SagaId::Order(id) => (6u64, id.as_str()),
    };
    let tag = match tag {
        StepTag::Debit => 1,
        StepTag::Credit => 2,
        StepTag::Refund => 3,
        StepTag::Hold => 4,
        StepTag::Validate => 5,
        StepTag::Release => 6,
        StepTag::Capture => 7,
        StepTag::ReserveLine(line) => 0x1_0000 | u64::from(line),
        StepTag::CommitLine(line) => 0x2_0000 | u64::from(line),
        StepTag::ReleaseLine(line) => 0x3_0000 | u64::from(line),
    };
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), (kind << 32) | tag)
}

/// A finished entity, whole: enough to answer every read and replay of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Archived {
    Payment(Arc<Payment>),
    Order(Arc<Order>),
    Reservation(Reservation),
    Op(OpKey, OpRecord),
    Step(StepKey, StepRecord),
}

impl Archived {
    pub fn key(&self) -> ArchiveKey {
        match self {
            Archived::Payment(payment) => ArchiveKey::Payment(payment.id.clone()),
            Archived::Order(order) => ArchiveKey::Order(order.id.clone()),
            Archived::Reservation(reservation) => ArchiveKey::Reservation(ReservationKey {
                sku: reservation.sku.clone(),
                id: reservation.id.clone(),
            }),
            Archived::Op(key, _) => ArchiveKey::Op(key.clone()),
            Archived::Step(key, _) => ArchiveKey::Step(key.clone()),
        }
    }

    /// The entity's public status, as stored beside it for operators.
    pub fn status(&self) -> &'static str {
        match self {
            Archived::Payment(payment) => payment.status.as_str(),
            Archived::Order(order) => order.status.as_str(),
            Archived::Reservation(reservation) => reservation.status.as_str(),
            Archived::Op(_, record) => match record.outcome {
                OpOutcome::Rejected(_) => "rejected",
                OpOutcome::BalanceChanged { .. } => "balance_changed",
                OpOutcome::Restocked { .. } => "restocked",
                OpOutcome::Finalized => "finalized",
            },
            Archived::Step(_, record) => match record.outcome {
                StepOutcome::Done => "done",
                StepOutcome::Rejected(_) => "rejected",
            },
        }
    }

    /// When the entity reached its final state.
    pub fn finished_at(&self) -> u64 {
        match self {
            Archived::Payment(payment) => payment.updated_at,
            Archived::Order(order) => order.updated_at,
            Archived::Reservation(reservation) => reservation.created_at,
            Archived::Op(_, record) => record.at,
            Archived::Step(_, record) => record.at,
        }
    }

    /// The entity in the archive's format: MessagePack, fields by position, the
    /// same encoding (and the same compatibility rules) as the journal's events.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data of owned values: encoding cannot fail.
        rmp_serde::to_vec(self).expect("an archived entity encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        rmp_serde::from_slice(bytes).map_err(|error| error.to_string())
    }
}
