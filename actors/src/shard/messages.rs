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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub to: ShardId,
    pub message: ShardMessage,
}
