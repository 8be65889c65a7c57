//! Events: the only thing that changes a shard's state, and what the journal holds.
//!
//! Each event carries everything its `apply` needs, so that replaying the journal
//! rebuilds exactly the state that clients were told about, with no lookups, clocks
//! or configuration involved.

use crate::archive::Archived;
use crate::domain::{AccountId, Currency, OrderId, PaymentId, ReservationId, Sku, TimestampMs};
use crate::model::{
    Ending, OpKey, OpRecord, PaymentTerms, ReservationStatus, SagaId, StepEffect, StepKey,
    StepOrigin, StepOutcome, StepTag,
};
use crate::order::{OrderEnding, OrderTerms, ReportedPrice};
use crate::rejection::Rejection;
use crate::router::ShardId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What the journal holds, one per change. New variants go at the end only, and
/// fields are never removed or reordered: see "Journal compatibility" in
/// [`crate::journal`], which also lists the variants added since the first
/// journals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    AccountCreated {
        id: AccountId,
        currency: Currency,
        overdraft_limit: Decimal,
        at: TimestampMs,
    },
    /// A deposit (positive delta) or withdrawal (negative delta).
    BalanceChanged {
        account: AccountId,
        delta: Decimal,
        at: TimestampMs,
    },
    /// An operation's outcome, kept for idempotent replay until `expires_at`.
    OpRecorded {
        key: OpKey,
        record: OpRecord,
        expires_at: TimestampMs,
    },
    PaymentCreated {
        id: PaymentId,
        terms: PaymentTerms,
        /// Set when the request itself is refused (e.g. `same_account`): the payment
        /// is still recorded under its id, as rejected.
        rejected: Option<Rejection>,
        at: TimestampMs,
    },
    /// A step's reply reached the coordinator; the payment's stage moves on.
    PaymentStepCompleted {
        id: PaymentId,
        tag: StepTag,
        outcome: StepOutcome,
        at: TimestampMs,
    },
    PaymentCaptureRequested {
        id: PaymentId,
        amount: Decimal,
        at: TimestampMs,
    },
    /// A void, or the hold's expiry: the hold is to be released.
    PaymentReleaseRequested {
        id: PaymentId,
        ending: Ending,
        at: TimestampMs,
    },
    /// An account shard handled a saga step (its effect is zero when rejected).
    StepApplied {
        key: StepKey,
        account: AccountId,
        outcome: StepOutcome,
        effect: StepEffect,
        /// For a hold: the amount held.
        amount: Decimal,
        expires_at: TimestampMs,
        at: TimestampMs,
        /// Who sent the step, and its stamp: the record stays until the sender's
        /// floor passes it. Last, and defaulted: older journals decode with none.
        #[serde(default)]
        origin: Option<StepOrigin>,
    },
    ItemCreated {
        sku: Sku,
        price: Decimal,
        currency: Currency,
        stock: u64,
        at: TimestampMs,
    },
    Restocked {
        sku: Sku,
        quantity: u64,
        at: TimestampMs,
    },
    Reserved {
        sku: Sku,
        id: ReservationId,
        quantity: u32,
        ttl_ms: u64,
        expires_at: TimestampMs,
        at: TimestampMs,
    },
    /// A held reservation was committed, released or expired.
    ReservationClosed {
        sku: Sku,
        id: ReservationId,
        status: ReservationStatus,
        at: TimestampMs,
    },
    /// An order was accepted; its saga starts (status `pending`).
    OrderCreated {
        id: OrderId,
        terms: OrderTerms,
        /// When the order expires if it is not authorized by then.
        deadline: TimestampMs,
        at: TimestampMs,
    },
    /// One of the order's steps answered; the saga moves on.
    OrderStepCompleted {
        id: OrderId,
        tag: StepTag,
        outcome: StepOutcome,
        /// For a line's reservation: the item's price and currency.
        price: Option<(Decimal, Currency)>,
        at: TimestampMs,
    },
    /// A cancel, or the deadline: the order ends once its steps in flight answer.
    OrderEndRequested {
        id: OrderId,
        ending: OrderEnding,
        at: TimestampMs,
    },
    /// An item shard handled an order line's step (its effect on the stock, if
    /// any, is a `Reserved` or `ReservationClosed` in the same batch).
    LineStepApplied {
        key: StepKey,
        outcome: StepOutcome,
        expires_at: TimestampMs,
        at: TimestampMs,
        /// As `StepApplied`'s.
        #[serde(default)]
        origin: Option<StepOrigin>,
    },
    /// Idempotency and step records past their retention are forgotten.
    /// Each entry names the deadline it was filed under in the timer index.
    RecordsPruned {
        ops: Vec<(TimestampMs, OpKey)>,
        steps: Vec<(TimestampMs, StepKey)>,
    },
    /// A payment's debit, credit or refund on an account of the coordinator's own
    /// shard: the account's change and the payment's move in one event. Both land
    /// in the same journal write, so the payment's stage alone says whether the
    /// step was applied and no step record (nor its retention timer) is needed.
    PaymentStepAppliedLocally {
        id: PaymentId,
        tag: StepTag,
        account: AccountId,
        outcome: StepOutcome,
        effect: StepEffect,
        at: TimestampMs,
    },
    /// A one-phase payment whose payer, payee and coordinator are all this shard,
    /// run to its end in one event: created, then its steps in saga order (see
    /// [`local_run_steps`](crate::state::local_run_steps)). Applying it is applying `PaymentCreated` and then one
    /// `PaymentStepAppliedLocally` per step; each step's effect follows from the
    /// terms and its outcome, so only the outcomes are journaled.
    PaymentRunLocally {
        id: PaymentId,
        terms: PaymentTerms,
        outcomes: Vec<StepOutcome>,
        at: TimestampMs,
    },
    /// A new order whose every line's item is on the order's own shard, and whose
    /// every line that shard would refuse to reserve, ended at once: created, then
    /// each line's reservation answered with its refusal, in line order (see
    /// [`crate::decide::local_refusals`]). Applying it is applying `OrderCreated`
    /// and then one `OrderStepCompleted` per line. No step message was ever sent,
    /// so no step record is kept. A refusal leaves the stock as it was, so only the
    /// order changes.
    OrderRefusedLocally {
        id: OrderId,
        terms: OrderTerms,
        deadline: TimestampMs,
        /// One per line, in line order: the refusal, and the item's price and
        /// currency as its shard reports them with the answer (none for a
        /// missing item).
        refusals: Vec<(Rejection, ReportedPrice)>,
        at: TimestampMs,
    },
    /// A new order whose items, payer and merchant are all on the order's own
    /// shard, and whose every step that shard would carry out, run to its end at
    /// once: confirmed. Applying it ([`crate::state::State::apply_with`]) takes
    /// the saga's steps in the saga's order (every line reserved, the total held,
    /// the merchant checked, every line committed, the total captured and
    /// credited), each with the effect its step had when the run was decided (see
    /// [`crate::decide::local_run`]); the total follows from the prices, as the
    /// order computes it. No step message was ever sent, so no step record is
    /// kept.
    OrderRunLocally {
        id: OrderId,
        terms: OrderTerms,
        deadline: TimestampMs,
        /// Each line's unit price, in line order, all in `currency`.
        unit_prices: Vec<Decimal>,
        currency: Currency,
        at: TimestampMs,
    },
    /// A new order whose every line's item is on the order's own shard, and of
    /// whose lines that shard would reserve some and refuse the others, ended at
    /// once: created, each line's reservation answered in line order (a reserved
    /// line takes its stock), each reserved line given back, and the order
    /// rejected with its first refused line's reason (see
    /// [`crate::decide::local_rejection`]). Applying it
    /// ([`crate::state::State::apply_with`]) takes these steps in this order, each
    /// with the effect its step has in the saga, so items and feeds go through
    /// every version the saga would show. No step message was ever sent, so no
    /// step record is kept.
    OrderRejectedLocally {
        id: OrderId,
        terms: OrderTerms,
        deadline: TimestampMs,
        /// One per line, in line order: its reservation's answer, and the item's
        /// price and currency as its shard reports them with the answer (none for
        /// a missing item).
        answers: Vec<(StepOutcome, ReportedPrice)>,
        at: TimestampMs,
    },
    /// The archive has stored every entity this shard finished up to and including
    /// event `through_seq` (see [`crate::archive`]): they leave memory. Entities
    /// finished later stay until a later round.
    EntitiesArchived { through_seq: u64 },
    /// A finished entity that had left memory, looked up in the archive for a
    /// command that names it, comes back as it was stored: the command is then
    /// planned and decided on it exactly as if it had never left.
    EntityRecalled { entity: Archived, at: TimestampMs },
    /// Shard `from`, a coordinator, has answered every step it sent here with a
    /// stamp below `floor` (see [`StepOrigin`]): the records of those steps go,
    /// and a step from it stamped below `floor` is a late duplicate from now on.
    StepFloorRaised { from: ShardId, floor: u64 },
}

impl Event {
    /// The payment or order whose coordinator this event moves, if any.
    pub fn saga(&self) -> Option<SagaId> {
        match self {
            Event::PaymentCreated { id, .. }
            | Event::PaymentStepCompleted { id, .. }
            | Event::PaymentCaptureRequested { id, .. }
            | Event::PaymentReleaseRequested { id, .. }
            | Event::PaymentStepAppliedLocally { id, .. }
            | Event::PaymentRunLocally { id, .. } => Some(SagaId::Payment(id.clone())),
            Event::OrderCreated { id, .. }
            | Event::OrderRefusedLocally { id, .. }
            | Event::OrderRunLocally { id, .. }
            | Event::OrderRejectedLocally { id, .. }
            | Event::OrderStepCompleted { id, .. }
            | Event::OrderEndRequested { id, .. } => Some(SagaId::Order(id.clone())),
            // Account, stock and record keeping: no coordinator moves.
            Event::AccountCreated { .. }
            | Event::BalanceChanged { .. }
            | Event::OpRecorded { .. }
            | Event::StepApplied { .. }
            | Event::ItemCreated { .. }
            | Event::Restocked { .. }
            | Event::Reserved { .. }
            | Event::ReservationClosed { .. }
            | Event::LineStepApplied { .. }
            | Event::RecordsPruned { .. }
            | Event::EntitiesArchived { .. }
            | Event::EntityRecalled { .. }
            | Event::StepFloorRaised { .. } => None,
        }
    }
}
