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

use crate::domain::{AccountId, Currency, OrderId, Quantity, ReservationId, Sku, TimestampMs};
use crate::event::Event;
use crate::model::{
    ReservationKey, ReservationStatus, SagaId, StepKey, StepKind, StepOutcome, StepTag,
};
use crate::rejection::Rejection;
use crate::state::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An item's unit price and currency as its shard reports them with a line
/// step's answer; none when the item does not exist.
pub type ReportedPrice = Option<(Decimal, Currency)>;

/// Most lines one order may have (API.md: 1–50).
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

/// Public status of an order (API.md).
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

/// An item shard's handling of an order line's step: the events (the step's record
/// and its effect on the stock) and the answer, with the item's price when the
/// item exists. A step seen before answers what it answered then.
pub fn decide_line_step(
    state: &State,
    order: &OrderId,
    line: u16,
    sku: &Sku,
    kind: LineStepKind,
    now: TimestampMs,
    retention_ms: u64,
) -> (Vec<Event>, StepOutcome) {
    let key = StepKey {
        saga: SagaId::Order(order.clone()),
        tag: kind.tag(line),
    };
    if let Some(record) = state.steps.get(&key) {
        return (Vec::new(), record.outcome);
    }
    let reservation_key = ReservationKey {
        sku: sku.clone(),
        id: ReservationId::for_order_line(order, line),
    };
    let reservation = state.reservations.get(&reservation_key);
    let close = |status| Event::ReservationClosed {
        sku: sku.clone(),
        id: reservation_key.id.clone(),
        status,
        at: now,
    };
    let result = match (state.items.get(sku), kind) {
        (None, _) => Err(Rejection::ItemNotFound),
        // The line was reserved before and its step record has since aged out (a
        // resend outlived the retention period): answer as then, and never
        // reserve the same line twice, which would count its units twice.
        (Some(_), LineStepKind::Reserve { .. }) if reservation.is_some() => Ok(Vec::new()),
        (Some(_), LineStepKind::Reserve { quantity }) => {
            match reserve_refusal(state, sku, quantity, 0) {
                Some(rejection) => Err(rejection),
                None => {
                    // The order, not the clock, ends this reservation: it never expires
                    // on its own, so a commit after authorization cannot fail.
                    Ok(vec![Event::Reserved {
                        sku: sku.clone(),
                        id: reservation_key.id.clone(),
                        quantity: quantity.get(),
                        ttl_ms: 0,
                        expires_at: TimestampMs::MAX,
                        at: now,
                    }])
                }
            }
        }
        (Some(_), LineStepKind::Commit) => match reservation.map(|r| r.status) {
            Some(ReservationStatus::Held) => Ok(vec![close(ReservationStatus::Committed)]),
            _ => Err(Rejection::ReservationReleased),
        },
        (Some(_), LineStepKind::Release) => match reservation.map(|r| r.status) {
            Some(ReservationStatus::Held) => Ok(vec![close(ReservationStatus::Released)]),
            // Nothing held: releasing is a no-op.
            _ => Ok(Vec::new()),
        },
    };
    let (mut events, outcome) = match result {
        Ok(events) => (events, StepOutcome::Done),
        Err(rejection) => (Vec::new(), StepOutcome::Rejected(rejection)),
    };
    events.push(Event::LineStepApplied {
        key,
        outcome,
        expires_at: now.saturating_add(retention_ms),
        at: now,
    });
    (events, outcome)
}

/// Why an item's shard would refuse to reserve `quantity` of `sku` for an order
/// line that holds no reservation yet, once `taken_before` units have been
/// reserved since `state` (by earlier lines of the same order); `None` when it
/// would reserve it.
pub fn reserve_refusal(
    state: &State,
    sku: &Sku,
    quantity: Quantity,
    taken_before: u64,
) -> Option<Rejection> {
    match state.items.get(sku) {
        None => Some(Rejection::ItemNotFound),
        Some(item) if item.available() < taken_before + u64::from(quantity.get()) => {
            Some(Rejection::OutOfStock)
        }
        Some(_) => None,
    }
}

/// The refusal of every line of a new order, in line order, when the items'
/// shard (`state`) would refuse every one of them; `None` as soon as one line
/// would be reserved. Such an order ends rejected without changing any stock,
/// which is what lets its shard run it in one event
/// (`Event::OrderRefusedLocally`) when the items are its own: the saga would send
/// every reserve at once, each would find the stock as it is now, and every
/// answer would be a refusal. An order with a line that would be reserved takes
/// that line's stock and gives it back (`local_rejection`, or the saga's way).
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_refusals(
    state: &State,
    terms: &OrderTerms,
) -> Option<Vec<(Rejection, ReportedPrice)>> {
    if terms.lines.is_empty() {
        return None;
    }
    terms
        .lines
        .iter()
        .map(|line| {
            let refusal = reserve_refusal(state, &line.sku, line.quantity, 0)?;
            Some((refusal, item_price(state, &line.sku)))
        })
        .collect()
}

/// Each line's answer to its reservation, in line order, with the item's price,
/// when the items' shard (`state`) would reserve some lines of a new order and
/// refuse the others; `None` when it would refuse none (the order goes on to its
/// payment) or every one (`local_refusals`). The saga sends every reserve at once
/// and the shard handles them in line order, so each line finds the stock that
/// the lines reserved before it left. Such an order ends rejected, with its
/// first refused line's reason, once each reserved line is given back; its shard
/// can run all of it in one event (`Event::OrderRejectedLocally`) when the items
/// are its own. In a flash sale these are the orders that pair the sold-out item
/// with one still in stock.
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_rejection(
    state: &State,
    terms: &OrderTerms,
) -> Option<Vec<(StepOutcome, ReportedPrice)>> {
    let mut answers: Vec<(StepOutcome, ReportedPrice)> = Vec::with_capacity(terms.lines.len());
    for (index, line) in terms.lines.iter().enumerate() {
        // Lines are few (ORDER_LINES_MAX): a scan beats a map here.
        let taken_before: u64 = terms.lines[..index]
            .iter()
            .zip(&answers)
            .filter(|(earlier, (outcome, _))| {
                earlier.sku == line.sku && *outcome == StepOutcome::Done
            })
            .map(|(earlier, _)| u64::from(earlier.quantity.get()))
            .sum();
        let outcome = match reserve_refusal(state, &line.sku, line.quantity, taken_before) {
            Some(refusal) => StepOutcome::Rejected(refusal),
            None => StepOutcome::Done,
        };
        answers.push((outcome, item_price(state, &line.sku)));
    }
    let reserved = answers
        .iter()
        .filter(|(outcome, _)| *outcome == StepOutcome::Done)
        .count();
    (reserved > 0 && reserved < answers.len()).then_some(answers)
}

/// What a local run of a new order (`Event::OrderRunLocally`) takes.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRun {
    /// Each line's unit price, in line order.
    pub unit_prices: Vec<Decimal>,
    pub currency: Currency,
}

/// The run of a new order on the shard (`state`) that holds its items, its payer
/// and its merchant, when every step of its saga would succeed there, in the
/// saga's order: every line reserved (each line finds the stock the lines before
/// it left), the total held on the payer, the merchant checked, the lines
/// committed, the total captured and credited. `None` when any step would be
/// refused: that order goes the saga's way, which also gives back what it took.
/// An order paid to its own payer goes the saga's way too: the merchant's credit
/// is checked here against the balance before the capture, which is only right
/// when the merchant is not the payer.
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_run(state: &State, terms: &OrderTerms) -> Option<LocalRun> {
    if terms.account == terms.merchant || terms.lines.is_empty() {
        return None;
    }
    let mut unit_prices = Vec::with_capacity(terms.lines.len());
    let mut currency = None;
    let mut total = Decimal::ZERO;
    for (index, line) in terms.lines.iter().enumerate() {
        let item = state.items.get(&line.sku)?;
        // Lines are few (ORDER_LINES_MAX): a scan beats a map here.
        let taken_before: u64 = terms.lines[..index]
            .iter()
            .filter(|earlier| earlier.sku == line.sku)
            .map(|earlier| u64::from(earlier.quantity.get()))
            .sum();
        let quantity = u64::from(line.quantity.get());
        if item.available() < taken_before + quantity {
            return None;
        }
        if *currency.get_or_insert(item.currency) != item.currency {
            return None;
        }
        total = total.checked_add(item.price.checked_mul(Decimal::from(quantity))?)?;
        unit_prices.push(item.price);
    }
    let currency = currency?;
    let payer = state.accounts.get(&terms.account)?;
    let merchant = state.accounts.get(&terms.merchant)?;
    let steps_succeed = payer.currency == currency
        && payer.available() >= total
        && merchant.currency == currency
        && merchant.balance.checked_add(total).is_some();
    // The total itself is the order's to compute (`Order::on_reply`), from the
    // prices; it was needed here only to check the steps.
    steps_succeed.then_some(LocalRun {
        unit_prices,
        currency,
    })
}

/// The price an item's shard reports with its answer.
pub fn item_price(state: &State, sku: &Sku) -> Option<(Decimal, Currency)> {
    state.items.get(sku).map(|item| (item.price, item.currency))
}
