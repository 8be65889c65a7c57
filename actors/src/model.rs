//! The entities a shard owns, their statuses, and the saga bookkeeping records.

use crate::domain::{
    AccountId, Currency, OpId, OrderId, PaymentId, ReservationId, Sku, TimestampMs,
};
use crate::rejection::Rejection;
use crate::router::ShardId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The retention deadline of an active hold's step record: never, until the hold
/// is released or captured (see `decide::decide_step`).
pub const HOLD_OPEN_DEADLINE: TimestampMs = TimestampMs::MAX;

/// A ledger account. Money amounts are decimals in the account's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub currency: Currency,
    pub balance: Decimal,
    /// Sum of the active holds of two-phase payments.
    pub held: Decimal,
    pub overdraft_limit: Decimal,
    /// Increases by one with every change of balance or held.
    pub version: u64,
    pub created_at: TimestampMs,
}

impl Account {
    /// `balance - held + overdraft_limit`, never below zero.
    pub fn available(&self) -> Decimal {
        (self.balance - self.held + self.overdraft_limit).max(Decimal::ZERO)
    }
}

/// Public status of a payment (docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// The saga has not reached its first reportable state yet (internal only:
    /// clients are answered once the payment leaves it).
    Pending,
    Settled,
    Authorized,
    Captured,
    Voided,
    Expired,
    Rejected,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Rejected => "rejected",
        }
    }
}

/// How a released hold ends the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    Rejected(Rejection),
    Voided,
    Expired,
}

/// Where a payment's saga stands. Every stage but `Authorized` and `Done` waits for
/// exactly one step on one account shard (see [`Payment::outstanding_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Immediate payment: waiting for the debit of `from`.
    Debit,
    /// Immediate payment: waiting for the credit of `to`.
    Credit,
    /// A credit failed after the debit: waiting for the money to go back to `from`.
    Refund {
        amount: Decimal,
        code: Rejection,
    },
    /// Two-phase payment: waiting for the hold on `from`.
    Hold,
    /// Two-phase payment: waiting for `to` to be checked.
    Validate,
    /// Waiting for the hold on `from` to be released; then the payment ends so.
    Release(Ending),
    /// Funds are held on `from`; nothing is in flight.
    Authorized,
    /// Waiting for the hold on `from` to be captured for `amount`.
    Capture {
        amount: Decimal,
    },
    /// Waiting for the captured `amount` to be credited to `to`.
    CaptureCredit {
        amount: Decimal,
    },
    Done,
}

/// The saga step a coordinator asks of an account shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    Debit { amount: Decimal },
    Credit { amount: Decimal },
    Refund { amount: Decimal },
    Hold { amount: Decimal },
    Validate,
    Release,
    Capture { amount: Decimal },
}

/// A step's identity within its saga: the deduplication key on the shard that
/// handles it. Order lines have their own tags, one per line index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StepTag {
    Debit,
    Credit,
    Refund,
    Hold,
    Validate,
    Release,
    Capture,
    /// Reserve order line `n` on its item's shard.
    ReserveLine(u16),
    /// Commit order line `n`'s reservation.
    CommitLine(u16),
    /// Release order line `n`'s reservation.
    ReleaseLine(u16),
}

/// The operation a saga step belongs to: the coordinator that sent it, and the
/// first half of the step's deduplication key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SagaId {
    Payment(PaymentId),
    Order(OrderId),
}

impl StepKey {
    /// The key as the archive stores it: `payment/<id>/<tag>` or
    /// `order/<id>/<tag>`, a line's tag with its index (`reserve_line.2`). Stored
    /// text: never change what an existing key writes.
    pub fn text(&self) -> String {
        let (saga, id) = match &self.saga {
            SagaId::Payment(id) => ("payment", id.as_str()),
            SagaId::Order(id) => ("order", id.as_str()),
        };
        let tag = match self.tag {
            StepTag::Debit => "debit".to_owned(),
            StepTag::Credit => "credit".to_owned(),
            StepTag::Refund => "refund".to_owned(),
            StepTag::Hold => "hold".to_owned(),
            StepTag::Validate => "validate".to_owned(),
            StepTag::Release => "release".to_owned(),
            StepTag::Capture => "capture".to_owned(),
            StepTag::ReserveLine(line) => format!("reserve_line.{line}"),
            StepTag::CommitLine(line) => format!("commit_line.{line}"),
            StepTag::ReleaseLine(line) => format!("release_line.{line}"),
        };
        format!("{saga}/{id}/{tag}")
    }
}

impl std::fmt::Display for SagaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SagaId::Payment(id) => write!(f, "payment {id}"),
            SagaId::Order(id) => write!(f, "order {id}"),
        }
    }
}

impl StepKind {
    pub fn tag(self) -> StepTag {
        match self {
            StepKind::Debit { .. } => StepTag::Debit,
            StepKind::Credit { .. } => StepTag::Credit,
            StepKind::Refund { .. } => StepTag::Refund,
            StepKind::Hold { .. } => StepTag::Hold,
            StepKind::Validate => StepTag::Validate,
            StepKind::Release => StepTag::Release,
            StepKind::Capture { .. } => StepTag::Capture,
        }
    }
}

/// How an account shard answered a step. Recorded, so a repeated step gets the
/// same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepOutcome {
    Done,
    Rejected(Rejection),
}

/// The change a step made to an account, carried in the event so that apply needs
/// no lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEffect {
    pub balance_delta: Decimal,
    pub held_delta: Decimal,
}

impl StepEffect {
    /// What a refused step does.
    pub const NONE: StepEffect = StepEffect {
        balance_delta: Decimal::ZERO,
        held_delta: Decimal::ZERO,
    };
}

/// A step already handled by this shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The account a money step changed (none for an order line's stock step).
    pub account: Option<AccountId>,
    pub outcome: StepOutcome,
    /// For a hold: the amount held (what a release or capture gives back).
    pub amount: Decimal,
    pub at: TimestampMs,
    /// Who sent the step and its stamp: the record stays until the sender's
    /// floor passes the stamp (see [`StepOrigin`]). None for a record written
    /// before steps carried stamps: it goes to the archive, as such records did.
    /// Last, and defaulted: older snapshots decode with none.
    #[serde(default)]
    pub origin: Option<StepOrigin>,
}

/// Where a saga step comes from: the coordinator's shard, and the step's stamp,
/// the sequence number of the coordinator's event that made it outstanding (its
/// saga's `stage_seq`). A coordinator's *floor* for a participant is the lowest
/// stamp among its steps to that participant still unanswered, or, with none, one
/// past its last event: every step it sent there with a stamp below it has been
/// answered and the answer is durable, so it will never send such a step again.
/// A participant keeps a step's record until the sender's floor passes the
/// stamp, and drops a step whose stamp is below the floor it last heard (a late
/// duplicate: applying it again would apply it twice). Nothing here depends on
/// how long anything takes (docs/ARCHITECTURE.md, "Saga steps apply once").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepOrigin {
    pub from: ShardId,
    pub stamp: u64,
}

/// The stamp of a saga that predates stamps (decoded from an older journal or
/// snapshot): its steps' records may be in the archive, so a participant that
/// does not hold one looks it up, as before.
pub const UNSTAMPED: u64 = 0;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepKey {
    pub saga: SagaId,
    pub tag: StepTag,
}

/// The fields of a payment request that decide whether a retry is "the same body".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTerms {
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Decimal,
    pub currency: Currency,
    pub capture: bool,
    pub hold_timeout_ms: u64,
}

/// The first state a client was told about: what a replay answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstOutcome {
    pub status: PaymentStatus,
    pub code: Option<Rejection>,
    pub at: TimestampMs,
}

/// A payment and its saga, owned by the payment's shard (the coordinator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub terms: PaymentTerms,
    pub status: PaymentStatus,
    pub code: Option<Rejection>,
    pub stage: Stage,
    pub captured_amount: Decimal,
    pub hold_expires_at: Option<TimestampMs>,
    pub first: Option<FirstOutcome>,
    pub created_at: TimestampMs,
    pub updated_at: TimestampMs,
    /// The sequence number of the event that moved the payment to its stage: the
    /// stamp of its outstanding step (see [`StepOrigin`]). Last, and defaulted:
    /// older journals and snapshots decode with [`UNSTAMPED`].
    #[serde(default)]
    pub stage_seq: u64,
}

impl Payment {
    /// The step this payment waits for: which account, and what to do there.
    pub fn outstanding_step(&self) -> Option<(&AccountId, StepKind)> {
        let terms = &self.terms;
        let amount = terms.amount;
        match self.stage {
            Stage::Debit => Some((&terms.from, StepKind::Debit { amount })),
            Stage::Credit => Some((&terms.to, StepKind::Credit { amount })),
            Stage::Refund { amount, .. } => Some((&terms.from, StepKind::Refund { amount })),
            Stage::Hold => Some((&terms.from, StepKind::Hold { amount })),
            Stage::Validate => Some((&terms.to, StepKind::Validate)),
            Stage::Release(_) => Some((&terms.from, StepKind::Release)),
            Stage::Capture { amount } => Some((&terms.from, StepKind::Capture { amount })),
            Stage::CaptureCredit { amount } => Some((&terms.to, StepKind::Credit { amount })),
            Stage::Authorized | Stage::Done => None,
        }
    }

    /// Money that has left `from` but not reached `to` (or come back): what
    /// conservation counts as in flight.
    pub fn in_flight(&self) -> Decimal {
        match self.stage {
            Stage::Credit => self.terms.amount,
            Stage::Refund { amount, .. } | Stage::CaptureCredit { amount } => amount,
            _ => Decimal::ZERO,
        }
    }
}

/// An item in stock. Invariant: `reserved <= on_hand`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub sku: Sku,
    pub price: Decimal,
    pub currency: Currency,
    /// The stock the item was created with: part of "the same fields" on a retry.
    pub initial_stock: u64,
    pub on_hand: u64,
    pub reserved: u64,
    pub version: u64,
    pub created_at: TimestampMs,
}

impl Item {
    pub fn available(&self) -> u64 {
        self.on_hand - self.reserved
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReservationStatus {
    Held,
    Committed,
    Released,
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub sku: Sku,
    pub id: ReservationId,
    pub quantity: u32,
    pub ttl_ms: u64,
    pub status: ReservationStatus,
    pub expires_at: TimestampMs,
    pub created_at: TimestampMs,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReservationKey {
    pub sku: Sku,
    pub id: ReservationId,
}

/// Identity of a non-creating operation for idempotent replay, e.g.
/// `deposit/acc-1/dep-7`. Scoped by kind and target so that ids only need to be
/// unique per target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpKey(pub String);

impl OpKey {
    pub fn new(kind: &str, target: &str, id: &OpId) -> Self {
        Self(format!("{kind}/{target}/{id}"))
    }
}

/// What the first attempt of an operation answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OpOutcome {
    Rejected(Rejection),
    BalanceChanged {
        id: OpId,
        account: AccountId,
        amount: Decimal,
        balance: Decimal,
    },
    /// Item counters right after a restock.
    Restocked {
        on_hand: u64,
        reserved: u64,
        version: u64,
    },
    /// The operation moved a payment or reservation into a final state; a replay
    /// answers with that resource as it is now (it cannot change any more).
    Finalized,
}

/// An operation already answered on this shard, kept for the retention period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    pub fingerprint: u64,
    pub outcome: OpOutcome,
    pub at: TimestampMs,
}

/// What a deadline in the timer index is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKey {
    PaymentHold(PaymentId),
    Reservation(ReservationKey),
    Op(OpKey),
    Step(StepKey),
    /// An order that is not final by then expires.
    OrderDeadline(OrderId),
}
