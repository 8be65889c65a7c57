//! Orders: the saga that reserves every line on its item's shard, holds the total
//! on the payer's shard, and then commits the stock and moves the money to the
//! merchant; or, on any refusal, a cancel or the deadline, gives back everything
//! it took.
//!
//! The order lives on its own shard (the coordinator). Its progress is plain data
//! changed only by events, so replay rebuilds it and recovery re-sends exactly the
//! steps still outstanding. Steps within a phase run in parallel (all lines are
//! reserved at once); phases follow each other, and a phase ends only once every
//! step of it has answered. That rule is what makes the saga safe against late and
//! duplicated messages: nothing is ever released before its reservation's answer
//! is known, so no reservation can appear after the order has let go of it.

use crate::domain::{AccountId, Currency, OrderId, Quantity, Sku, TimestampMs};
use crate::model::{StepKind, StepOutcome, StepTag};
use crate::rejection::Rejection;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An item's unit price and currency as its shard reports them with a line
/// step's answer; none when the item does not exist.
pub type ReportedPrice = Option<(Decimal, Currency)>;

/// Most lines one order may have (docs/API.md: 1–50).
pub const ORDER_LINES_MAX: usize = 50;

/// How long an order may take before it expires, unless configured otherwise.
pub const ORDER_TIMEOUT_MS_DEFAULT: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// What an order asks for: "the same body" on a retry means the same terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTerms {
    pub account: AccountId,
    pub merchant: AccountId,
    pub lines: Vec<OrderLine>,
}

/// Public status of an order (docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    Pending,
    Reserved,
    Authorized,
    Confirmed,
    Rejected,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Authorized => "authorized",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Confirmed
                | OrderStatus::Rejected
                | OrderStatus::Cancelled
                | OrderStatus::Expired
        )
    }
}

/// How an order that does not confirm ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEnding {
    Rejected(Rejection),
    Cancelled,
    Expired,
}

impl OrderEnding {
    fn status(self) -> (OrderStatus, Option<Rejection>) {
        match self {
            OrderEnding::Rejected(reason) => (OrderStatus::Rejected, Some(reason)),
            OrderEnding::Cancelled => (OrderStatus::Cancelled, None),
            OrderEnding::Expired => (OrderStatus::Expired, None),
        }
    }
}

/// Where one line stands on its item's shard, as far as the coordinator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineState {
    /// The reservation was asked for; no answer yet.
    Waiting,
    Reserved,
    Refused(Rejection),
    Committed,
    Released,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineProgress {
    pub state: LineState,
    /// The item's price and currency, as its shard reported them.
    pub unit_price: Option<Decimal>,
    pub currency: Option<Currency>,
}

/// Where the saga stands. Every stage but `Done` waits for the answers to
/// [`Order::outstanding_steps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStage {
    /// Waiting for every line's reservation answer.
    Reserving,
    /// Waiting for the total to be held on the payer's account.
    Holding,
    /// Waiting for the merchant's account to be checked.
    Validating,
    /// Authorized: waiting for every line's reservation to be committed.
    Committing,
    /// Waiting for the held total to be taken from the payer.
    Capturing,
    /// Waiting for the total to reach the merchant.
    Crediting,
    /// Giving back the hold on the payer's account, then the stock.
    ReleasingHold(OrderEnding),
    /// Giving back every reserved line.
    ReleasingLines(OrderEnding),
    Done,
}

/// A step the order waits for, and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderStep {
    /// A money step on an account's shard (the same steps payments use).
    Account {
        account: AccountId,
        currency: Currency,
        kind: StepKind,
    },
    /// A stock step on an item's shard.
    Line {
        line: u16,
        sku: Sku,
        kind: LineStepKind,
    },
}

impl OrderStep {
    /// The step's identity within the order.
    pub fn tag(&self) -> StepTag {
        match self {
            OrderStep::Account { kind, .. } => kind.tag(),
            OrderStep::Line { line, kind, .. } => kind.tag(*line),
        }
    }
}

/// What an order asks of an item's shard for one of its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineStepKind {
    Reserve { quantity: Quantity },
    Commit,
    Release,
}

impl LineStepKind {
    pub fn tag(self, line: u16) -> StepTag {
        match self {
            LineStepKind::Reserve { .. } => StepTag::ReserveLine(line),
            LineStepKind::Commit => StepTag::CommitLine(line),
            LineStepKind::Release => StepTag::ReleaseLine(line),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub terms: OrderTerms,
    pub status: OrderStatus,
    pub reason: Option<Rejection>,
    pub stage: OrderStage,
    pub lines: Vec<LineProgress>,
    /// Known once every line is reserved and priced in one currency.
    pub total: Option<Decimal>,
    pub currency: Option<Currency>,
    /// Every status the order has had, oldest first; its length is the order's
    /// version, which feeds use as their sequence number.
    pub history: Vec<(OrderStatus, TimestampMs)>,
    /// A cancel or expiry that arrived while steps were in flight: it takes effect
    /// once they have answered.
    pub ending_requested: Option<OrderEnding>,
    pub deadline: TimestampMs,
    pub created_at: TimestampMs,
    pub updated_at: TimestampMs,
    /// The sequence number of the event that moved the order to its stage: the
    /// stamp of every step of that stage (a stage's steps all start with it, and
    /// the next stage starts only once they have all answered; see
    /// [`crate::model::StepOrigin`]). Last, and defaulted: older journals and
    /// snapshots decode with [`crate::model::UNSTAMPED`].
    #[serde(default)]
    pub stage_seq: u64,
}

impl Order {
    pub fn new(id: OrderId, terms: OrderTerms, deadline: TimestampMs, at: TimestampMs) -> Self {
        let lines = terms
            .lines
            .iter()
            .map(|_| LineProgress {
                state: LineState::Waiting,
                unit_price: None,
                currency: None,
            })
            .collect();
        Self {
            id,
            terms,
            status: OrderStatus::Pending,
            reason: None,
            stage: OrderStage::Reserving,
            lines,
            total: None,
            currency: None,
            history: vec![(OrderStatus::Pending, at)],
            ending_requested: None,
            deadline,
            created_at: at,
            updated_at: at,
            stage_seq: crate::model::UNSTAMPED,
        }
    }

    pub fn is_final(&self) -> bool {
        self.stage == OrderStage::Done
    }

    /// The feed sequence number of the order's latest status.
    pub fn version(&self) -> u64 {
        self.history.len() as u64
    }

    /// Whether a cancel or expiry can still stop the order: only before it is
    /// authorized. After that the stock and money are promised and the order
    /// completes.
    pub fn can_end(&self) -> bool {
        self.ending_requested.is_none()
            && matches!(
                self.stage,
                OrderStage::Reserving | OrderStage::Holding | OrderStage::Validating
            )
    }

    /// Money that has left the payer but not reached the merchant.
    pub fn in_flight(&self) -> Decimal {
        match (self.stage, self.total) {
            (OrderStage::Crediting, Some(total)) => total,
            _ => Decimal::ZERO,
        }
    }

    /// Every step the order waits for now.
    pub fn outstanding_steps(&self) -> Vec<OrderStep> {
        let terms = &self.terms;
        let lines_in = |state: LineState, kind: &dyn Fn(&OrderLine) -> LineStepKind| {
            self.lines
                .iter()
                .enumerate()
                .filter(|(_, progress)| progress.state == state)
                .map(|(index, _)| {
                    let line = &terms.lines[index];
                    OrderStep::Line {
                        line: index as u16,
                        sku: line.sku.clone(),
                        kind: kind(line),
                    }
                })
                .collect::<Vec<_>>()
        };
        let account_step = |account: &AccountId, kind: StepKind| {
            // Every stage after Reserving has a total in one currency.
            let currency = self.currency.expect("a priced order has a currency");
            vec![OrderStep::Account {
                account: account.clone(),
                currency,
                kind,
            }]
        };
        let total = self.total.unwrap_or(Decimal::ZERO);
        match self.stage {
            OrderStage::Reserving => lines_in(LineState::Waiting, &|line| LineStepKind::Reserve {
                quantity: line.quantity,
            }),
            OrderStage::Holding => account_step(&terms.account, StepKind::Hold { amount: total }),
            OrderStage::Validating => account_step(&terms.merchant, StepKind::Validate),
            OrderStage::Committing => lines_in(LineState::Reserved, &|_| LineStepKind::Commit),
            OrderStage::Capturing => {
                account_step(&terms.account, StepKind::Capture { amount: total })
            }
            OrderStage::Crediting => {
                account_step(&terms.merchant, StepKind::Credit { amount: total })
            }
            OrderStage::ReleasingHold(_) => account_step(&terms.account, StepKind::Release),
            OrderStage::ReleasingLines(_) => {
                lines_in(LineState::Reserved, &|_| LineStepKind::Release)
            }
            OrderStage::Done => Vec::new(),
        }
    }

    /// Whether an answer to the step `tag` is awaited now. Anything else is a
    /// duplicate or a late answer to an earlier send, and is ignored.
    pub fn expects(&self, tag: StepTag, outcome: StepOutcome) -> bool {
        let awaited = self.awaits(tag);
        // Once authorized, nothing can refuse the order: the reservations never
        // expire on their own, the hold is only released by this order, and the
        // merchant was checked. A refusal there is a bug elsewhere; it is not
        // applied (the step is resent and the order stays visible as stuck).
        let impossible = matches!(outcome, StepOutcome::Rejected(_))
            && matches!(
                self.stage,
                OrderStage::Committing
                    | OrderStage::Capturing
                    | OrderStage::Crediting
                    | OrderStage::ReleasingHold(_)
                    | OrderStage::ReleasingLines(_)
            );
        awaited && !impossible
    }

    /// Whether the step `tag` is outstanding.
    pub fn awaits(&self, tag: StepTag) -> bool {
        self.outstanding_steps()
            .iter()
            .any(|step| step.tag() == tag)
    }

    /// A step's answer (already checked with [`Order::expects`]).
    pub fn on_reply(
        &mut self,
        tag: StepTag,
        outcome: StepOutcome,
        price: Option<(Decimal, Currency)>,
        at: TimestampMs,
    ) {
        self.updated_at = at;
        let done = outcome == StepOutcome::Done;
        match (self.stage, tag) {
            (OrderStage::Reserving, StepTag::ReserveLine(line)) => {
                let progress = &mut self.lines[usize::from(line)];
                if let Some((unit_price, currency)) = price {
                    progress.unit_price = Some(unit_price);
                    progress.currency = Some(currency);
                }
                progress.state = match outcome {
                    StepOutcome::Done => LineState::Reserved,
                    StepOutcome::Rejected(code) => LineState::Refused(code),
                };
                if self.lines.iter().all(|l| l.state != LineState::Waiting) {
                    self.after_reservations(at);
                }
            }
            (OrderStage::Holding, StepTag::Hold) => match (self.ending_requested, outcome) {
                (Some(ending), StepOutcome::Done) => self.stage = OrderStage::ReleasingHold(ending),
                (Some(ending), StepOutcome::Rejected(_)) => self.release_lines(ending, at),
                (None, StepOutcome::Done) => self.stage = OrderStage::Validating,
                (None, StepOutcome::Rejected(code)) => {
                    self.release_lines(OrderEnding::Rejected(code), at)
                }
            },
            (OrderStage::Validating, StepTag::Validate) => match (self.ending_requested, outcome) {
                (Some(ending), _) => self.stage = OrderStage::ReleasingHold(ending),
                (None, StepOutcome::Done) => {
                    self.set_status(OrderStatus::Authorized, at);
                    self.stage = OrderStage::Committing;
                }
                (None, StepOutcome::Rejected(code)) => {
                    self.stage = OrderStage::ReleasingHold(OrderEnding::Rejected(code))
                }
            },
            (OrderStage::Committing, StepTag::CommitLine(line)) if done => {
                self.lines[usize::from(line)].state = LineState::Committed;
                if self.lines.iter().all(|l| l.state == LineState::Committed) {
                    self.stage = OrderStage::Capturing;
                }
            }
            (OrderStage::Capturing, StepTag::Capture) if done => self.stage = OrderStage::Crediting,
            (OrderStage::Crediting, StepTag::Credit) if done => {
                self.stage = OrderStage::Done;
                self.set_status(OrderStatus::Confirmed, at);
            }
            (OrderStage::ReleasingHold(ending), StepTag::Release) if done => {
                self.release_lines(ending, at)
            }
            (OrderStage::ReleasingLines(ending), StepTag::ReleaseLine(line)) if done => {
                self.lines[usize::from(line)].state = LineState::Released;
                if self.lines.iter().all(|l| l.state != LineState::Reserved) {
                    self.finish(ending, at);
                }
            }
            (stage, tag) => {
                // `expects` lets through only answers that fit the stage.
                panic!(
                    "step {tag:?} {outcome:?} does not fit order {} at {stage:?}",
                    self.id
                )
            }
        }
    }

    /// A cancel or the deadline (checked with [`Order::can_end`]). It waits for
    /// the steps in flight: their answers decide what must be given back.
    pub fn request_end(&mut self, ending: OrderEnding, at: TimestampMs) {
        self.updated_at = at;
        self.ending_requested = Some(ending);
    }

    /// Every line has answered: go on to the money, or give the stock back.
    fn after_reservations(&mut self, at: TimestampMs) {
        if let Some(ending) = self.ending_requested {
            return self.release_lines(ending, at);
        }
        let refused = self.lines.iter().find_map(|line| match line.state {
            LineState::Refused(code) => Some(code),
            _ => None,
        });
        if let Some(code) = refused {
            return self.release_lines(OrderEnding::Rejected(code), at);
        }
        let currency = self.lines[0].currency;
        if self.lines.iter().any(|line| line.currency != currency) {
            return self.release_lines(OrderEnding::Rejected(Rejection::CurrencyMismatch), at);
        }
        let total = self.lines.iter().zip(&self.terms.lines).try_fold(
            Decimal::ZERO,
            |sum, (progress, line)| {
                let price = progress.unit_price?;
                sum.checked_add(price.checked_mul(Decimal::from(line.quantity.get()))?)
            },
        );
        let Some(total) = total else {
            // No account can hold a total beyond Decimal's range.
            return self.release_lines(OrderEnding::Rejected(Rejection::InsufficientFunds), at);
        };
        self.currency = currency;
        self.total = Some(total);
        self.set_status(OrderStatus::Reserved, at);
        self.stage = OrderStage::Holding;
    }

    fn release_lines(&mut self, ending: OrderEnding, at: TimestampMs) {
        if self
            .lines
            .iter()
            .any(|line| line.state == LineState::Reserved)
        {
            self.stage = OrderStage::ReleasingLines(ending);
        } else {
            self.finish(ending, at);
        }
    }

    fn finish(&mut self, ending: OrderEnding, at: TimestampMs) {
        let (status, reason) = ending.status();
        self.stage = OrderStage::Done;
        self.reason = reason;
        self.set_status(status, at);
    }

    fn set_status(&mut self, status: OrderStatus, at: TimestampMs) {
        self.status = status;
        self.history.push((status, at));
    }
}
