//! Simulated clients: what they ask (a random mix of every kind of request,
//! including retries with the same and with a different body), what they were
//! told, and the checks on every answer: a retry of an acknowledged request answers
//! the same, a different body under the same id is refused.
//!
//! # Orders
//!
//! Most orders are drawn to succeed (items a client saw created, a payer and a
//! merchant in their currency); the rest are drawn blindly and meet every refusal:
//! missing items, too little stock or money, mixed currencies. Clients wait for
//! the final state, or only a while (`wait_ms` of zero and more) and get the
//! order as it stands; they cancel recent orders (racing the saga) and old ones
//! (already final), and retry both with the same and with other bodies. An order
//! answer is never compared for equality with an earlier one: the order moves on
//! between them, so an earlier answer's history must be a prefix of a later one's,
//! and two final answers must be equal. Every order answer is kept in [`Told`] and
//! checked against the final state (`check_orders` in `checks.rs`).

use super::node::Answer;
use super::rng::SimRng;
use crate::command::OrderView;
use crate::command::{Command, Reply};
use crate::decide::op_key;
use crate::domain::{
    AccountId, Amount, Currency, OpId, OrderId, PaymentId, Quantity, ReservationId, Sku,
    TimestampMs,
};
use crate::model::{PaymentStatus, ReservationStatus};
use crate::order::{OrderLine, OrderStatus, OrderTerms};
use crate::rejection::Rejection;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// A client request's number, in order of sending.
pub type RequestId = u64;

/// Largest amount accepted by the simulated edge (the server's `amount_max`).
const AMOUNT_MAX: u64 = 1_000_000_000;
/// Most units one reservation or restock asks for.
const QUANTITY_MAX: u32 = 1_000;
/// Most lines of a simulated order: enough for same- and cross-shard lines and
/// several lines on one item, few enough that orders still confirm.
const ORDER_LINES_DRAWN_MAX: u64 = 4;
/// How many of the newest orders count as recent: a cancel of one of them is
/// likely to race its saga.
const RECENT_ORDERS: usize = 6;
/// A client wait longer than any order takes to end (the scenario's order timeout
/// is at most a minute): the client hears the final state.
const ORDER_WAIT_MS_LONG: u64 = 120_000;
/// A SKU that no client ever creates: lines on it are refused `item_not_found`.
const SKU_MISSING: &str = "ghost";

/// The kinds of request the clients send; weights are in [`Mix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CreateAccount,
    Deposit,
    Withdraw,
    Pay,
    Capture,
    Void,
    CreateItem,
    Restock,
    Reserve,
    Commit,
    Release,
    /// An earlier request again, same body (after a "retry" answer, or not).
    RetrySame,
    /// An earlier acknowledged request's id with a different body.
    RetryDifferent,
    Order,
    CancelOrder,
}

const KINDS: [Kind; 15] = [
    Kind::CreateAccount,
    Kind::Deposit,
    Kind::Withdraw,
    Kind::Pay,
    Kind::Capture,
    Kind::Void,
    Kind::CreateItem,
    Kind::Restock,
    Kind::Reserve,
    Kind::Commit,
    Kind::Release,
    Kind::RetrySame,
    Kind::RetryDifferent,
    Kind::Order,
    Kind::CancelOrder,
];

/// Relative weights of each [`Kind`], in the order of `KINDS`.
#[derive(Debug, Clone)]
pub struct Mix {
    pub weights: [u64; 15],
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            weights: [3, 10, 4, 16, 5, 3, 1, 6, 10, 4, 3, 8, 2, 10, 4],
        }
    }
}

/// The shape of one run's world.
#[derive(Debug, Clone)]
pub struct Universe {
    pub accounts: Vec<(AccountId, Currency, Decimal)>,
    pub skus: Vec<Sku>,
    pub hold_timeout_ms_max: u64,
    pub ttl_ms_max: u64,
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub group: Option<String>,
    pub sent_at_ms: TimestampMs,
    pub decided_at_ms: Option<TimestampMs>,
    /// `None` while in flight.
    pub answer: Option<Answer>,
}

/// All requests under one id or idempotency key.
#[derive(Debug, Clone)]
struct Group {
    first_sent_at_ms: TimestampMs,
    /// The first acknowledged answer (normalised), and the body it answered.
    canonical: Option<(Command, Reply)>,
    /// Every distinct body sent under this id.
    bodies: Vec<Command>,
    /// Whether replays are only promised within the retention period.
    retained: bool,
}

pub struct Workload {
    pub universe: Universe,
    mix: Mix,
    pub requests: Vec<Request>,
    groups: BTreeMap<String, Group>,
    /// Requests whose answer was "retry", not yet answered by a later retry.
    unknown: BTreeSet<RequestId>,
    /// Acknowledged requests that have a group, for retries.
    acknowledged: Vec<RequestId>,
    next_id: u64,
    payments: Vec<PaymentId>,
    authorized: Vec<PaymentId>,
    reservations: Vec<(Sku, ReservationId)>,
    /// Every order id sent, oldest first.
    orders: Vec<OrderId>,
    /// Items a client saw created, with their currency.
    item_currency: BTreeMap<Sku, Currency>,
    /// What clients were told, checked against the final state.
    pub told: Told,
}

/// Acknowledged outcomes that the final state must agree with.
#[derive(Debug, Default)]
pub struct Told {
    pub payment_first: BTreeMap<PaymentId, PaymentStatus>,
    pub captured: BTreeMap<PaymentId, Decimal>,
    pub voided: BTreeSet<PaymentId>,
    pub reservations: BTreeMap<(Sku, ReservationId), ReservationStatus>,
    /// Every order a client was shown (by a create or a cancel), in answer order.
    pub orders: BTreeMap<OrderId, Vec<ToldOrder>>,
}

/// One answer that showed an order.
#[derive(Debug, Clone)]
pub struct ToldOrder {
    pub request: RequestId,
    pub view: OrderView,
    /// Shown by a cancel: only ever a cancelled order.
    pub by_cancel: bool,
}

impl Workload {
    pub fn new(universe: Universe, mix: Mix) -> Self {
        Self {
            universe,
            mix,
            requests: Vec::new(),
            groups: BTreeMap::new(),
            unknown: BTreeSet::new(),
            acknowledged: Vec::new(),
            next_id: 0,
            payments: Vec::new(),
            authorized: Vec::new(),
            reservations: Vec::new(),
            orders: Vec::new(),
            item_currency: BTreeMap::new(),
            told: Told::default(),
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// A new request (or a retry), registered as sent at `now_ms`.
    pub fn generate(&mut self, rng: &mut SimRng, now_ms: TimestampMs) -> RequestId {
        let kind = KINDS[rng.weighted(&self.mix.weights)];
        let command = match kind {
            Kind::RetrySame => self.retry_same(rng),
            Kind::RetryDifferent => self.retry_different(rng),
            _ => None,
        };
        let command = command.unwrap_or_else(|| self.new_command(rng, kind));
        self.send(command, now_ms)
    }

    /// Registers a request the world is about to deliver.
    pub fn send(&mut self, command: Command, now_ms: TimestampMs) -> RequestId {
        let id = self.requests.len() as RequestId;
        let group = group_of(&command);
        if let Some(key) = &group {
            let entry = self.groups.entry(key.clone()).or_insert_with(|| Group {
                first_sent_at_ms: now_ms,
                canonical: None,
                bodies: Vec::new(),
                retained: op_key(&command).is_some(),
            });
            if !entry.bodies.iter().any(|body| same_body(body, &command)) {
                entry.bodies.push(command.clone());
            }
        }
        self.requests.push(Request {
            command,
            group,
            sent_at_ms: now_ms,
            decided_at_ms: None,
            answer: None,
        });
        id
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per kind of command the workload generates"
    )]
    fn new_command(&mut self, rng: &mut SimRng, kind: Kind) -> Command {
        let accounts = self.universe.accounts.clone();
        let (account, currency, overdraft) = accounts[rng.index(accounts.len())].clone();
        let sku = self.universe.skus[rng.index(self.universe.skus.len())].clone();
        match kind {
            Kind::CreateAccount => Command::CreateAccount {
                id: account,
                currency,
                overdraft_limit: overdraft,
            },
            Kind::Deposit | Kind::Withdraw => {
                let amount = if rng.chance(10) {
                    // One decimal too many for the account's currency: refused on
                    // the shard, which alone knows the currency.
                    let scale = currency.scale() + 1;
                    decimal_amount(rng.between(1, 999) * 10 + 1, scale)
                } else {
                    money(
                        rng,
                        currency,
                        if kind == Kind::Deposit { 1_000 } else { 400 },
                    )
                };
                let id = OpId::parse(&self.fresh("op")).expect("generated ids are valid");
                let replayable = !rng.chance(100);
                if kind == Kind::Deposit {
                    Command::Deposit {
                        account,
                        id,
                        amount,
                        currency: rng.chance(200).then_some(currency),
                        replayable,
                    }
                } else {
                    Command::Withdraw {
                        account,
                        id,
                        amount,
                        currency: rng.chance(200).then_some(currency),
                        replayable,
                    }
                }
            }
            Kind::Pay => {
                let (to, to_currency, _) = accounts[rng.index(accounts.len())].clone();
                let currency = if rng.chance(900) {
                    currency
                } else {
                    to_currency
                };
                let id = PaymentId::parse(&self.fresh("pay")).expect("generated ids are valid");
                self.payments.push(id.clone());
                Command::CreatePayment {
                    id,
                    from: account,
                    to,
                    amount: money(rng, currency, 300),
                    currency,
                    capture: rng.chance(500),
                    hold_timeout_ms: rng.between(100, self.universe.hold_timeout_ms_max),
                }
            }
            Kind::Capture | Kind::Void => {
                let id = self.some_payment(rng);
                let op = if rng.chance(200) {
                    None
                } else {
                    Some(OpId::parse(&self.fresh("op")).expect("generated ids are valid"))
                };
                if kind == Kind::Void {
                    Command::VoidPayment { id, op }
                } else {
                    let amount = rng.chance(400).then(|| {
                        let currency = accounts[0].1;
                        money(rng, currency, 300)
                    });
                    Command::CapturePayment { id, amount, op }
                }
            }
            Kind::CreateItem => Command::CreateItem {
                sku,
                price: money(rng, currency, 100),
                currency,
                stock: rng.between(0, 20),
            },
            Kind::Restock => Command::Restock {
                sku,
                quantity: quantity(rng.between(1, 20)),
                op: self.maybe_op(rng, 700),
            },
            Kind::Reserve => {
                let id = ReservationId::parse(&self.fresh("res")).expect("generated ids are valid");
                self.reservations.push((sku.clone(), id.clone()));
                Command::Reserve {
                    sku,
                    id,
                    quantity: quantity(rng.between(1, 4)),
                    ttl_ms: rng.between(100, self.universe.ttl_ms_max),
                }
            }
            Kind::Commit | Kind::Release => {
                let (sku, id) = if self.reservations.is_empty() {
                    let id = ReservationId::parse("res0").expect("valid id");
                    (sku, id)
                } else {
                    self.reservations[rng.index(self.reservations.len())].clone()
                };
                let op = self.maybe_op(rng, 700);
                if kind == Kind::Commit {
                    Command::CommitReservation { sku, id, op }
                } else {
                    Command::ReleaseReservation { sku, id, op }
                }
            }
            Kind::Order => self.new_order(rng),
            Kind::CancelOrder => Command::CancelOrder {
                id: self.some_order(rng),
                op: self.maybe_op(rng, 700),
            },
            Kind::RetrySame | Kind::RetryDifferent => Command::CreateAccount {
                id: account,
                currency,
                overdraft_limit: overdraft,
            },
        }
    }

    /// A fresh operation id with probability `per_mille` / 1000, else none.
    fn maybe_op(&mut self, rng: &mut SimRng, per_mille: u64) -> Option<OpId> {
        rng.chance(per_mille)
            .then(|| OpId::parse(&self.fresh("op")).expect("generated ids are valid"))
    }

    /// Prefers payments a client was told are authorized: those can be captured or
    /// voided; others get refusals, which are worth checking too.
    fn some_payment(&mut self, rng: &mut SimRng) -> PaymentId {
        if !self.authorized.is_empty() && rng.chance(800) {
            return self.authorized[rng.index(self.authorized.len())].clone();
        }
        if self.payments.is_empty() {
            return PaymentId::parse("pay0").expect("valid id");
        }
        self.payments[rng.index(self.payments.len())].clone()
    }

    /// An order: most drawn to succeed, the rest blindly (see the module
    /// documentation).
    fn new_order(&mut self, rng: &mut SimRng) -> Command {
        let id = OrderId::parse(&self.fresh("ord")).expect("generated ids are valid");
        self.orders.push(id.clone());
        let accounts = &self.universe.accounts;
        let known: Vec<(&Sku, Currency)> = self
            .item_currency
            .iter()
            .map(|(sku, currency)| (sku, *currency))
            .collect();
        let (account, merchant, skus, quantity_max) = if !known.is_empty() && rng.chance(800) {
            let currency = known[rng.index(known.len())].1;
            let skus: Vec<Sku> = known
                .iter()
                .filter(|(_, c)| *c == currency)
                .map(|(sku, _)| (*sku).clone())
                .collect();
            // Items are created in the currency of some account, so there is one.
            let same: Vec<&AccountId> = accounts
                .iter()
                .filter(|(_, c, _)| *c == currency)
                .map(|(id, _, _)| id)
                .collect();
            let account = same[rng.index(same.len())].clone();
            let merchant = same[rng.index(same.len())].clone();
            (account, merchant, skus, 2)
        } else {
            let mut skus = self.universe.skus.clone();
            skus.push(Sku::parse(SKU_MISSING).expect("valid id"));
            let account = accounts[rng.index(accounts.len())].0.clone();
            let merchant = accounts[rng.index(accounts.len())].0.clone();
            (account, merchant, skus, 4)
        };
        let lines = (0..rng.between(1, ORDER_LINES_DRAWN_MAX))
            .map(|_| OrderLine {
                sku: skus[rng.index(skus.len())].clone(),
                quantity: quantity(rng.between(1, quantity_max)),
            })
            .collect();
        Command::CreateOrder {
            id,
            terms: OrderTerms {
                account,
                merchant,
                lines,
            },
            wait_ms: order_wait_ms(rng),
        }
    }

    /// Mostly a recent order (its saga may still run), sometimes any, rarely one
    /// that never existed.
    fn some_order(&mut self, rng: &mut SimRng) -> OrderId {
        if self.orders.is_empty() || rng.chance(50) {
            return OrderId::parse("ord0").expect("valid id");
        }
        let newest = self.orders.len() - 1;
        let nth = if rng.chance(700) {
            rng.between(newest.saturating_sub(RECENT_ORDERS) as u64, newest as u64) as usize
        } else {
            rng.index(self.orders.len())
        };
        self.orders[nth].clone()
    }

    fn retry_same(&mut self, rng: &mut SimRng) -> Option<Command> {
        let id = if !self.unknown.is_empty() && rng.chance(700) {
            let nth = rng.index(self.unknown.len());
            *self.unknown.iter().nth(nth).expect("index is in range")
        } else if self.acknowledged.is_empty() {
            return None;
        } else {
            self.acknowledged[rng.index(self.acknowledged.len())]
        };
        let mut command = self.requests[id as usize].command.clone();
        // How long a client waits is not part of the body: a retry may wait more or
        // less and still must get the same order.
        if let Command::CreateOrder { wait_ms, .. } = &mut command {
            if rng.chance(500) {
                *wait_ms = order_wait_ms(rng);
            }
        }
        Some(command)
    }

    fn retry_different(&mut self, rng: &mut SimRng) -> Option<Command> {
        if self.acknowledged.is_empty() {
            return None;
        }
        let id = self.acknowledged[rng.index(self.acknowledged.len())];
        different_body(&self.requests[id as usize].command)
    }

    /// Re-sends (same body) one request of every group that has an acknowledged
    /// answer: at quiescence, each must answer what it answered first.
    pub fn canonical_commands(&self) -> Vec<Command> {
        self.groups
            .values()
            .filter_map(|group| group.canonical.as_ref().map(|(command, _)| command.clone()))
            .collect()
    }

    /// Requests still answered only with "retry", for the final round of retries.
    pub fn unknown_commands(&self) -> Vec<Command> {
        self.unknown
            .iter()
            .map(|id| self.requests[*id as usize].command.clone())
            .collect()
    }

    pub fn on_decided(&mut self, request: RequestId, at_ms: TimestampMs) {
        self.requests[request as usize].decided_at_ms = Some(at_ms);
    }

    /// Records an answer and checks it against what the same id answered before.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per kind of answer the workload's model follows"
    )]
    pub fn on_answer(
        &mut self,
        request: RequestId,
        answer: Answer,
        retention_ms: u64,
    ) -> Result<(), String> {
        let entry = &mut self.requests[request as usize];
        if entry.answer.is_some() {
            return Err(format!("request {request} answered twice"));
        }
        entry.answer = Some(answer.clone());
        let command = entry.command.clone();
        let decided_at_ms = entry.decided_at_ms;
        let group_key = entry.group.clone();
        let reply = match answer {
            Answer::Retry => {
                if group_key.is_some() {
                    self.unknown.insert(request);
                }
                return Ok(());
            }
            Answer::Reply(reply) => reply,
        };
        self.note_order(request, &command, &reply)?;
        let Some(key) = group_key else {
            self.learn(&command, &reply);
            return Ok(());
        };
        // Any answer settles the unknown outcomes of the same body.
        let same: Vec<RequestId> = self
            .unknown
            .iter()
            .copied()
            .filter(|id| same_body(&self.requests[*id as usize].command, &command))
            .collect();
        for id in same {
            self.unknown.remove(&id);
        }
        let group = self
            .groups
            .get_mut(&key)
            .expect("every group is registered");
        let within_retention = !group.retained
            || decided_at_ms.is_some_and(|at| at < group.first_sent_at_ms + retention_ms);
        if is_conflict(&command, &reply) {
            if group.bodies.len() < 2 {
                return Err(format!(
                    "{key}: refused as a conflict, but only one body was ever sent: {command:?} -> {reply:?}"
                ));
            }
            return Ok(());
        }
        let normalized = normalize(&command, &reply);
        match &group.canonical {
            None => {
                group.canonical = Some((command.clone(), normalized));
                self.acknowledged.push(request);
                self.learn(&command, &reply);
            }
            Some((first_command, first_reply)) if within_retention => {
                if !same_body(first_command, &command) {
                    return Err(format!(
                        "{key}: a different body was accepted: first {first_command:?} -> {first_reply:?}, now {command:?} -> {reply:?}"
                    ));
                }
                if let (
                    Command::CreateOrder { .. },
                    Reply::Order { order: first, .. },
                    Reply::Order { order: now, .. },
                ) = (&command, first_reply, &normalized)
                {
                    if !order_answers_agree(first, now) {
                        return Err(format!(
                            "{key}: a retry showed another order: first {first:?}, retry {now:?} (request {request})"
                        ));
                    }
                } else if *first_reply != normalized {
                    return Err(format!(
                        "{key}: a retry answered differently: first {first_reply:?}, retry {normalized:?} (request {request}: {command:?})"
                    ));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Keeps every answer that shows an order, and checks what needs no final
    /// state: a create shows its own order; a cancel shows only a cancelled one.
    fn note_order(
        &mut self,
        request: RequestId,
        command: &Command,
        reply: &Reply,
    ) -> Result<(), String> {
        let (Command::CreateOrder { id, .. } | Command::CancelOrder { id, .. }) = command else {
            return Ok(());
        };
        let Reply::Order { order, .. } = reply else {
            return Ok(());
        };
        let by_cancel = matches!(command, Command::CancelOrder { .. });
        if order.id != *id {
            return Err(format!("order {id}: answered with order {}", order.id));
        }
        if by_cancel && order.status != OrderStatus::Cancelled {
            return Err(format!(
                "a cancel of order {id} was answered with a {:?} order: {order:?}",
                order.status
            ));
        }
        if let Command::CreateOrder { terms, .. } = command {
            let lines_match = order.lines.len() == terms.lines.len()
                && order.lines.iter().zip(&terms.lines).all(|(shown, asked)| {
                    shown.sku == asked.sku && shown.quantity == asked.quantity.get()
                });
            if order.account != terms.account || order.merchant != terms.merchant || !lines_match {
                return Err(format!(
                    "order {id} was created with {terms:?} and shown as {order:?}"
                ));
            }
        }
        self.told
            .orders
            .entry(id.clone())
            .or_default()
            .push(ToldOrder {
                request,
                view: order.clone(),
                by_cancel,
            });
        Ok(())
    }

    /// Updates what clients know from an acknowledged answer.
    fn learn(&mut self, command: &Command, reply: &Reply) {
        match (command, reply) {
            (Command::CreateItem { sku, .. }, Reply::Item { item, .. }) => {
                self.item_currency
                    .entry(sku.clone())
                    .or_insert(item.currency);
            }
            (Command::CreatePayment { id, .. }, Reply::Payment { payment, .. }) => {
                self.told
                    .payment_first
                    .entry(id.clone())
                    .or_insert(payment.status);
                if payment.status == PaymentStatus::Authorized {
                    self.authorized.push(id.clone());
                }
            }
            (Command::CapturePayment { id, .. }, Reply::Payment { payment, .. })
                if payment.status == PaymentStatus::Captured =>
            {
                self.told
                    .captured
                    .insert(id.clone(), payment.captured_amount);
            }
            (Command::VoidPayment { id, .. }, Reply::Payment { payment, .. })
                if payment.status == PaymentStatus::Voided =>
            {
                self.told.voided.insert(id.clone());
            }
            (
                Command::CommitReservation { sku, id, .. }
                | Command::ReleaseReservation { sku, id, .. },
                Reply::Reservation { reservation, .. },
            ) => {
                self.told
                    .reservations
                    .insert((sku.clone(), id.clone()), reservation.status);
            }
            _ => {}
        }
    }

    pub fn groups_acknowledged(&self) -> impl Iterator<Item = (&String, &Command, &Reply)> {
        self.groups.iter().filter_map(|(key, group)| {
            group
                .canonical
                .as_ref()
                .map(|(command, reply)| (key, command, reply))
        })
    }
}

/// The id under which retries of `command` are deduplicated, if any.
pub fn group_of(command: &Command) -> Option<String> {
    if let Some(key) = op_key(command) {
        return Some(key.0);
    }
    match command {
        Command::CreateAccount { id, .. } => Some(format!("account/{id}")),
        Command::CreatePayment { id, .. } => Some(format!("payment/{id}")),
        Command::CreateItem { sku, .. } => Some(format!("item/{sku}")),
        Command::CreateOrder { id, .. } => Some(format!("order/{id}")),
        Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CapturePayment { .. }
        | Command::VoidPayment { .. }
        | Command::Restock { .. }
        | Command::Reserve { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::CancelOrder { .. } => None,
    }
}

/// Whether two requests carry "the same body": all of the command but how long a
/// client waits for an order.
fn same_body(first: &Command, second: &Command) -> bool {
    match (first, second) {
        (
            Command::CreateOrder {
                id: first_id,
                terms: first_terms,
                ..
            },
            Command::CreateOrder { id, terms, .. },
        ) => first_id == id && first_terms == terms,
        _ => first == second,
    }
}

/// Whether two answers can show the same order at two moments: the earlier
/// history is a prefix of the later, and a final order never changes.
pub fn order_answers_agree(first: &OrderView, second: &OrderView) -> bool {
    let (shorter, longer) = if first.history.len() <= second.history.len() {
        (first, second)
    } else {
        (second, first)
    };
    if shorter.is_final() {
        return first == second;
    }
    shorter.id == longer.id
        && shorter.account == longer.account
        && shorter.merchant == longer.merchant
        && shorter.created_at == longer.created_at
        && longer.history.starts_with(&shorter.history)
}

/// How long a client waits for an order's final state: not at all, a moment, or
/// longer than any order takes.
fn order_wait_ms(rng: &mut SimRng) -> u64 {
    match rng.weighted(&[2, 3, 5]) {
        0 => 0,
        1 => rng.between(1, 200),
        _ => ORDER_WAIT_MS_LONG,
    }
}

/// The refusal a different body under the same id gets.
fn is_conflict(command: &Command, reply: &Reply) -> bool {
    matches!(
        (command, reply.rejection()),
        (_, Some(Rejection::IdempotencyConflict))
            | (
                Command::CreateAccount { .. },
                Some(Rejection::AccountExists)
            )
            | (Command::CreateItem { .. }, Some(Rejection::ItemExists))
    )
}

/// The parts of an answer that a replay must repeat: creation answers show the
/// entity as it is now, so only their fixed fields count.
fn normalize(command: &Command, reply: &Reply) -> Reply {
    let mut reply = reply.clone();
    match &mut reply {
        Reply::Account { account, created } => {
            *created = false;
            account.balance = Decimal::ZERO;
            account.held = Decimal::ZERO;
            account.available = Decimal::ZERO;
            account.version = 0;
        }
        Reply::Item {
            item,
            created,
            replayed,
        } => {
            *replayed = false;
            if matches!(command, Command::CreateItem { .. }) {
                *created = false;
                item.on_hand = 0;
                item.reserved = 0;
                item.available = 0;
                item.version = 0;
            }
        }
        Reply::BalanceChange { replayed, .. }
        | Reply::Payment { replayed, .. }
        | Reply::Reservation { replayed, .. }
        | Reply::Order { replayed, .. }
        | Reply::Rejected { replayed, .. } => *replayed = false,
    }
    reply
}

/// The same id with another body, for commands whose body can differ.
fn different_body(command: &Command) -> Option<Command> {
    let bump = |amount: &Amount| {
        Amount::from_decimal(amount.value() + Decimal::ONE, Decimal::from(AMOUNT_MAX))
            .expect("a bumped amount stays positive and small")
    };
    let mut command = command.clone();
    match &mut command {
        Command::CreateAccount {
            overdraft_limit, ..
        } => *overdraft_limit += Decimal::from(7),
        Command::Deposit {
            amount, replayable, ..
        }
        | Command::Withdraw {
            amount, replayable, ..
        } if *replayable => *amount = bump(amount),
        Command::CreatePayment { amount, .. } => *amount = bump(amount),
        Command::CapturePayment {
            amount,
            op: Some(_),
            ..
        } => {
            *amount = Some(match amount {
                Some(amount) => bump(amount),
                None => Amount::from_decimal(Decimal::ONE, Decimal::from(AMOUNT_MAX))
                    .expect("one is a valid amount"),
            })
        }
        Command::CreateItem { stock, .. } => *stock += 1,
        Command::Restock {
            quantity: q,
            op: Some(_),
            ..
        } => *q = quantity(u64::from(q.get()) + 1),
        Command::Reserve { ttl_ms, .. } => *ttl_ms += 1,
        Command::CreateOrder { terms, .. } => {
            let line = &mut terms.lines[0];
            line.quantity = quantity(u64::from(line.quantity.get()) + 1);
        }
        // Not replayable (no client-chosen id), or a body with nothing to change.
        Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CapturePayment { .. }
        | Command::Restock { .. }
        | Command::VoidPayment { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::CancelOrder { .. } => return None,
    }
    Some(command)
}

fn decimal_amount(units: u64, scale: u32) -> Amount {
    let value = Decimal::new(units as i64, scale);
    Amount::from_decimal(value, Decimal::from(AMOUNT_MAX)).expect("positive and small")
}

/// A positive amount of at most `units_max` whole units, valid in `currency`.
fn money(rng: &mut SimRng, currency: Currency, units_max: u64) -> Amount {
    let scale = currency.scale();
    let minor = 10u64.pow(scale);
    let value = if rng.chance(500) {
        rng.between(1, units_max) * minor
    } else {
        rng.between(1, units_max * minor)
    };
    decimal_amount(value, scale)
}

fn quantity(units: u64) -> Quantity {
    Quantity::parse(units, QUANTITY_MAX).expect("small positive quantity")
}
