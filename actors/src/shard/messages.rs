//! What shards send each other: saga steps and their answers.

use crate::domain::{AccountId, Currency, OrderId, Sku};
use crate::model::{SagaId, StepKind, StepOutcome, StepTag};
use crate::order::LineStepKind;
use crate::router::ShardId;
use serde::{Deserialize, Serialize};

/// A money step sent to the shard owning `account`, by a payment or an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRequest {
    pub saga: SagaId,
    pub account: AccountId,
    pub currency: Currency,
    pub kind: StepKind,
    pub reply_to: ShardId,
    /// The step's stamp (see [`crate::model::StepOrigin`]).
    pub stamp: u64,
}

/// An account shard's answer to a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReply {
    pub saga: SagaId,
    pub tag: StepTag,
    pub outcome: StepOutcome,
}

/// A stock step for one of an order's lines, sent to the shard owning `sku`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineStepRequest {
    pub order: OrderId,
    pub line: u16,
    pub sku: Sku,
    pub kind: LineStepKind,
    pub reply_to: ShardId,
    /// The step's stamp (see [`crate::model::StepOrigin`]).
    pub stamp: u64,
}

/// An item shard's answer to a line step, with the item's price and currency
/// when the item exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineStepReply {
    pub order: OrderId,
    pub tag: StepTag,
    pub outcome: StepOutcome,
    pub price: Option<(rust_decimal::Decimal, Currency)>,
}

/// A message between shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardMessage {
    Step(StepRequest),
    StepReply(StepReply),
    LineStep(LineStepRequest),
    LineStepReply(LineStepReply),
    /// A coordinator's floor for the shard it is sent to: every step it sent
    /// there with a stamp below `floor` has been answered, durably (see
    /// [`crate::model::StepOrigin`]).
    StepFloor(StepFloor),
}

/// See [`ShardMessage::StepFloor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFloor {
    pub from: ShardId,
    pub floor: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub to: ShardId,
    pub message: ShardMessage,
}
