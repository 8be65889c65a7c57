//! The shard core: one shard's state machine plus its saga driving, with no I/O.
//!
//! The actor (and the simulator) feed it inputs: client commands, queries, saga
//! steps from other shards, their replies, and clock ticks. It applies what it
//! decides to its state at once, so later inputs in the same batch see earlier
//! ones, and collects a [`Batch`]: the events to journal, and the replies and
//! messages that may only leave once those events are durable. The owner then
//! either `commit`s (journal write succeeded) or `rollback`s (it failed).

use crate::command::{Command, OrderView, PaymentView, Query, Reply, ReservationView};
use crate::decide::{self, Plan, WaitFor};
use crate::domain::{AccountId, Currency, OrderId, PaymentId, Sku, TimestampMs};
use crate::event::{local_run_steps, Event};
use crate::model::{
    OpRecord, ReservationKey, ReservationStatus, SagaId, Stage, StepEffect, StepKind, StepOutcome,
    StepTag, TimerKey,
};
use crate::notice::Notice;
use crate::order::{self, LineStepKind, OrderEnding, OrderStep};
use crate::rejection::Rejection;
use crate::router::{Router, ShardId};
use crate::state::{Changed, State};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Identifies a waiting client request; the owner maps it to a reply channel.
pub type Token = u64;

/// Limits and timings of a shard.
#[derive(Debug, Clone)]
pub struct ShardLimits {
    /// How long idempotency and step records are kept.
    pub retention_ms: u64,
    /// How long a coordinator waits for a step's reply before sending it again.
    pub step_resend_ms: u64,
    /// Most timers (expiries, prunes) handled by one tick, so a tick never turns
    /// into a long stall.
    pub expirations_per_tick_max: usize,
    /// How long an order may take to be authorized before it expires.
    pub order_timeout_ms: u64,
}

impl Default for ShardLimits {
    fn default() -> Self {
        Self {
            retention_ms: decide::RETENTION_MS_DEFAULT,
            step_resend_ms: 1_000,
            expirations_per_tick_max: 10_000,
            order_timeout_ms: order::ORDER_TIMEOUT_MS_DEFAULT,
        }
    }
}

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

/// The largest batch (in events) whose buffers a shard keeps for the next (see
/// `ShardCore::recycle`): 32 MB at most (128-byte events), and far above a busy shard's
/// batches (a few thousand to a few tens of thousands of events).
pub const SPARE_EVENTS_CAPACITY_MAX: usize = 1 << 18;

/// What one batch produced. Nothing in it may leave the shard before `events` are
/// durable.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub replies: Vec<(Token, Reply)>,
    pub messages: Vec<Envelope>,
    /// What feeds hear of this batch, in event order.
    pub notices: Vec<Notice>,
    /// Clients that started waiting on a saga in this batch; if the batch is rolled
    /// back they must be told to retry.
    pub new_waiters: Vec<Token>,
    /// Where the state's undo logs ended when the batch was taken.
    pub undo_mark: crate::state::UndoMark,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.replies.is_empty() && self.messages.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    token: Token,
    wait: WaitFor,
    replayed: bool,
    /// When the client is answered with the state as it is, final or not.
    answer_by: Option<TimestampMs>,
}

pub struct ShardCore {
    pub id: ShardId,
    pub state: State,
    router: Router,
    limits: ShardLimits,
    /// Shard clock: never goes backwards, whatever the wall clock does.
    now: TimestampMs,
    batch: Batch,
    /// Steps for this very shard, handled within the same batch.
    local: VecDeque<ShardMessage>,
    /// Clients waiting for a payment's saga (volatile: lost in a crash, and those
    /// clients get a retryable error).
    waiters: HashMap<SagaId, Vec<Waiter>>,
    /// When each unfinished saga's outstanding steps were last sent (volatile).
    step_sent_at: BTreeMap<SagaId, TimestampMs>,
    /// Sagas whose waiters should be checked at the end of this input.
    touched: Vec<SagaId>,
    batch_open: bool,
    /// The buffers of a batch already written, emptied, kept for the next batch
    /// (see `recycle`).
    spare: Batch,
}

impl ShardCore {
    pub fn new(id: ShardId, router: Router, limits: ShardLimits, state: State) -> Self {
        Self {
            id,
            state,
            router,
            limits,
            now: 0,
            batch: Batch::default(),
            local: VecDeque::new(),
            waiters: HashMap::new(),
            step_sent_at: BTreeMap::new(),
            touched: Vec::new(),
            batch_open: false,
            spare: Batch::default(),
        }
    }

    pub fn now(&self) -> TimestampMs {
        self.now
    }

    /// Moves the shard clock forward to `wall_ms` (never backwards).
    pub fn advance_clock(&mut self, wall_ms: TimestampMs) {
        self.now = self.now.max(wall_ms);
    }

    pub fn limits(&self) -> &ShardLimits {
        &self.limits
    }

    /// Replays journaled events (recovery): no undo recording, no outputs.
    pub fn replay(&mut self, events: &[Event]) {
        for event in events {
            self.state.apply(event);
            if let Some(at) = event_time(event) {
                self.now = self.now.max(at);
            }
        }
    }

    /// After recovery: sends every unfinished saga's outstanding step again.
    /// Steps are idempotent, so a step that did arrive before the crash is answered
    /// from its record.
    pub fn redrive(&mut self) {
        self.open_batch();
        let payments = self
            .state
            .payments
            .iter()
            .filter(|(_, payment)| payment.outstanding_step().is_some())
            .map(|(id, _)| SagaId::Payment(id.clone()));
        let orders = self
            .state
            .orders
            .iter()
            .filter(|(_, order)| !order.is_final())
            .map(|(id, _)| SagaId::Order(id.clone()));
        // Sorted, so that replay and simulation send in a reproducible order.
        let pending: std::collections::BTreeSet<SagaId> = payments.chain(orders).collect();
        for saga in pending {
            self.send_outstanding_step(&saga);
        }
        self.drain_local();
    }

    /// Opens a batch (undo recording on) unless one is open already.
    fn open_batch(&mut self) {
        if !self.batch_open {
            self.batch_open = true;
            self.state.set_recording(true);
        }
    }

    /// Whether inputs were handled since the last commit or rollback.
    pub fn batch_open(&self) -> bool {
        self.batch_open
    }

    /// Events in the open batch.
    pub fn open_events(&self) -> usize {
        self.batch.events.len()
    }

    /// Handles a client command.
    pub fn command(&mut self, token: Token, command: Command) {
        self.open_batch();
        match decide::plan(&self.state, &command) {
            Plan::Answer(reply) => self.batch.replies.push((token, reply)),
            Plan::Wait(wait, replayed) => {
                if let Some(saga) = saga_of(&command) {
                    let answer_by = self.answer_by(&command);
                    self.add_waiter(saga.clone(), token, wait, replayed, answer_by);
                    self.touched.push(saga);
                }
            }
            Plan::Decide => match decide::decide(
                &self.state,
                &command,
                self.now,
                self.limits.order_timeout_ms,
            ) {
                Ok(events) => {
                    for event in events {
                        let event = self.run_locally_if_possible(event);
                        self.emit(event);
                    }
                    if let Some(outcome) = decide::op_outcome_after(&self.state, &command) {
                        self.record_op(&command, outcome);
                    }
                    match decide::answer(&self.state, &command) {
                        Ok(reply) => self.batch.replies.push((token, reply)),
                        Err(wait) => {
                            // Every saga command names its payment or order.
                            let saga = saga_of(&command).expect("saga command names its saga");
                            let answer_by = self.answer_by(&command);
                            self.add_waiter(saga.clone(), token, wait, false, answer_by);
                            self.touched.push(saga);
                        }
                    }
                }
                Err(rejection) => {
                    self.record_op(&command, crate::model::OpOutcome::Rejected(rejection));
                    self.batch.replies.push((token, Reply::rejected(rejection)));
                }
            },
        }
        self.drain_local();
    }

    /// A new order whose items are all on this shard and would all refuse their
    /// line ends at once, as one event (`Event::OrderRefusedLocally`), instead of a
    /// creation, a step record per line and a step answer per line. In a flash
    /// sale most orders are such refusals once the hot item has sold out. One
    /// whose items are all here, some of which would be reserved and others
    /// refused, is rejected at once too (`Event::OrderRejectedLocally`), instead
    /// of a creation, a step record and a step answer per line, and per reserved
    /// line its release with its own record and answer: in a flash sale, the
    /// orders that pair the sold-out item with another. A new
    /// order whose items, payer and merchant are all here, and whose every step
    /// would succeed, is confirmed at once (`Event::OrderRunLocally`) instead of
    /// six events per line and nine more, and two step records per line and four
    /// more.
    ///
    /// A new one-phase payment whose payer and payee are both on this shard runs to
    /// its end at once, as one event: one journal entry and no step messages, where
    /// the saga would take a creation and a step event per debit and credit. A run
    /// whose credit would be refused goes the saga's way instead (debit, credit,
    /// refund as separate events): the payer's balance changes twice, and its feed
    /// must see both versions, while `PaymentRunLocally`'s notices are read from the
    /// state after it.
    fn run_locally_if_possible(&self, event: Event) -> Event {
        match event {
            Event::PaymentCreated {
                id,
                terms,
                rejected: None,
                at,
            } if terms.capture
                && self.router.shard_for(terms.from.as_str()) == self.id
                && self.router.shard_for(terms.to.as_str()) == self.id =>
            {
                let saga = SagaId::Payment(id.clone());
                match decide::local_run_outcomes(&self.state, &saga, &terms) {
                    Some(outcomes) => Event::PaymentRunLocally {
                        id,
                        terms,
                        outcomes,
                        at,
                    },
                    None => Event::PaymentCreated {
                        id,
                        terms,
                        rejected: None,
                        at,
                    },
                }
            }
            Event::OrderCreated {
                id,
                terms,
                deadline,
                at,
            } if terms
                .lines
                .iter()
                .all(|line| self.router.shard_for(line.sku.as_str()) == self.id) =>
            {
                let accounts_here = [&terms.account, &terms.merchant]
                    .iter()
                    .all(|account| self.router.shard_for(account.as_str()) == self.id);
                if let Some(refusals) = order::local_refusals(&self.state, &terms) {
                    Event::OrderRefusedLocally {
                        id,
                        terms,
                        deadline,
                        refusals,
                        at,
                    }
                } else if let Some(answers) = order::local_rejection(&self.state, &terms) {
                    Event::OrderRejectedLocally {
                        id,
                        terms,
                        deadline,
                        answers,
                        at,
                    }
                } else if let Some(run) =
                    order::local_run(&self.state, &terms).filter(|_| accounts_here)
                {
                    Event::OrderRunLocally {
                        id,
                        terms,
                        deadline,
                        unit_prices: run.unit_prices,
                        currency: run.currency,
                        at,
                    }
                } else {
                    Event::OrderCreated {
                        id,
                        terms,
                        deadline,
                        at,
                    }
                }
            }
            event => event,
        }
    }

    /// Answers a read from the current state. The owner must only release it once
    /// everything before it is durable.
    pub fn query(&self, query: &Query) -> Reply {
        let state = &self.state;
        match query {
            Query::Account(id) => match state.accounts.get(id) {
                Some(account) => Reply::Account {
                    account: account.into(),
                    created: false,
                },
                None => Reply::rejected(Rejection::AccountNotFound),
            },
            Query::Payment(id) => match state.payments.get(id) {
                // A payment still looking for its first outcome is not visible yet:
                // its creator has not been answered.
                Some(payment) if payment.first.is_some() => Reply::Payment {
                    payment: PaymentView::current(payment),
                    replayed: false,
                },
                _ => Reply::rejected(Rejection::PaymentNotFound),
            },
            Query::Item(sku) => match state.items.get(sku) {
                Some(item) => Reply::Item {
                    item: item.into(),
                    created: false,
                    replayed: false,
                },
                None => Reply::rejected(Rejection::ItemNotFound),
            },
            Query::Reservation(sku, id) => {
                let key = ReservationKey {
                    sku: sku.clone(),
                    id: id.clone(),
                };
                match state.reservations.get(&key) {
                    Some(reservation) => Reply::Reservation {
                        reservation: ReservationView::from(reservation),
                        replayed: false,
                    },
                    None => Reply::rejected(Rejection::ReservationNotFound),
                }
            }
            Query::Order(id) => match state.orders.get(id) {
                Some(order) => Reply::Order {
                    order: OrderView::from(&**order),
                    replayed: false,
                },
                None => Reply::rejected(Rejection::OrderNotFound),
            },
        }
    }

    /// When a client creating an order stops waiting for its final state.
    fn answer_by(&self, command: &Command) -> Option<TimestampMs> {
        match command {
            Command::CreateOrder { wait_ms, .. } => Some(self.now.saturating_add(*wait_ms)),
            _ => None,
        }
    }

    /// Handles a message from another shard (or this one).
    pub fn message(&mut self, message: ShardMessage) {
        self.open_batch();
        self.local.push_back(message);
        self.drain_local();
    }

    /// Expires holds and reservations, prunes old records, and resends steps whose
    /// reply is overdue.
    pub fn tick(&mut self) {
        self.open_batch();
        let now = self.now;
        let due: Vec<(TimestampMs, TimerKey)> = self
            .state
            .timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .take(self.limits.expirations_per_tick_max)
            .cloned()
            .collect();
        let (mut ops, mut steps) = (Vec::new(), Vec::new());
        for (deadline, key) in due {
            match key {
                TimerKey::PaymentHold(id) => {
                    let authorized = self.state.payments.get(&id).is_some_and(|payment| {
                        payment.stage == Stage::Authorized
                            && payment.hold_expires_at == Some(deadline)
                    });
                    if authorized {
                        self.emit(Event::PaymentReleaseRequested {
                            id,
                            ending: crate::model::Ending::Expired,
                            at: now,
                        });
                    }
                }
                TimerKey::Reservation(key) => {
                    let held = self.state.reservations.get(&key).is_some_and(|r| {
                        r.status == ReservationStatus::Held && r.expires_at == deadline
                    });
                    if held {
                        self.emit(Event::ReservationClosed {
                            sku: key.sku,
                            id: key.id,
                            status: ReservationStatus::Expired,
                            at: now,
                        });
                    }
                }
                TimerKey::Op(key) => ops.push((deadline, key)),
                TimerKey::Step(key) => steps.push((deadline, key)),
                TimerKey::OrderDeadline(id) => {
                    if self.state.orders.get(&id).is_some_and(|o| o.can_end()) {
                        self.emit(Event::OrderEndRequested {
                            id,
                            ending: OrderEnding::Expired,
                            at: now,
                        });
                    }
                }
            }
        }
        if !ops.is_empty() || !steps.is_empty() {
            self.emit(Event::RecordsPruned { ops, steps });
        }
        let overdue: Vec<SagaId> = self
            .step_sent_at
            .iter()
            .filter(|(_, sent_at)| now.saturating_sub(**sent_at) >= self.limits.step_resend_ms)
            .map(|(saga, _)| saga.clone())
            .collect();
        for saga in overdue {
            self.send_outstanding_step(&saga);
        }
        self.drain_local();
        self.answer_overdue_waiters();
    }

    /// Takes what the current batch produced, for the owner to journal. Inputs
    /// after this open the next batch, which may be handled while this one is
    /// written (its changes stay undoable until `commit_batch`).
    pub fn take_batch(&mut self) -> Batch {
        let next = std::mem::take(&mut self.spare);
        let mut batch = std::mem::replace(&mut self.batch, next);
        batch.undo_mark = self.state.undo_mark();
        self.batch_open = false;
        batch
    }

    /// Takes back the buffers of a batch that has been written and released, for
    /// a later batch. A busy shard's batches hold thousands of events; growing
    /// fresh buffers for each one by doubling cost a fifth of the shard's thread in
    /// a flash sale, most of it the kernel zeroing new pages. A batch whose event
    /// buffer is above `SPARE_EVENTS_CAPACITY_MAX` is let go rather than kept.
    pub fn recycle(&mut self, mut batch: Batch) {
        let capacity = batch.events.capacity();
        if capacity <= self.spare.events.capacity() || capacity > SPARE_EVENTS_CAPACITY_MAX {
            return;
        }
        batch.events.clear();
        batch.replies.clear();
        batch.messages.clear();
        batch.notices.clear();
        batch.new_waiters.clear();
        self.spare = batch;
    }

    /// `batch` (the oldest taken and not yet committed) is durable: forget its part
    /// of the undo log; batches taken or opened after it stay undoable.
    pub fn commit_batch(&mut self, batch: &Batch) {
        self.state.commit_through(batch.undo_mark);
        if !self.batch_open && self.state.undo_is_empty() {
            self.state.set_recording(false);
        }
    }

    /// Everything handled so far is durable: forget the undo log.
    pub fn commit(&mut self) {
        self.state.commit();
        self.state.set_recording(false);
        self.batch_open = false;
    }

    /// The batch's journal write failed: go back to the durable state, undoing
    /// every batch after it too (the owner takes the open one and fails it along).
    /// Clients that started waiting on sagas in `batch` stop waiting.
    pub fn rollback(&mut self, durable_seq: u64, batch: &Batch) {
        self.state.rollback(durable_seq);
        self.state.set_recording(false);
        self.batch_open = false;
        for waiters in self.waiters.values_mut() {
            waiters.retain(|w| !batch.new_waiters.contains(&w.token));
        }
        self.waiters.retain(|_, waiters| !waiters.is_empty());
        // Outstanding steps of payments that no longer exist are dropped; others are
        // resent on the next tick.
        let state = &self.state;
        self.step_sent_at.retain(|saga, _| match saga {
            SagaId::Payment(id) => state.payments.contains_key(id),
            SagaId::Order(id) => state.orders.contains_key(id),
        });
    }

    /// Drops every waiting client (the shard is going down); returns their tokens.
    pub fn take_waiters(&mut self) -> Vec<Token> {
        self.waiters
            .drain()
            .flat_map(|(_, waiters)| waiters.into_iter().map(|w| w.token))
            .collect()
    }

    pub fn waiting_clients(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }

    fn emit(&mut self, event: Event) {
        let order_version_before = match &event {
            Event::OrderStepCompleted { id, .. } | Event::OrderEndRequested { id, .. } => {
                self.state.orders.get(id).map_or(0, |o| o.history.len())
            }
            _ => 0,
        };
        // The accounts and items an event changes in its middle are heard as they
        // were then; the rest is read from the state after the event (`notice`).
        // (Only `RecordsPruned` has no time, and it changes no account or item.)
        let at = event_time(&event).unwrap_or(self.now);
        let (state, notices) = (&mut self.state, &mut self.batch.notices);
        state.apply_with(&event, &mut |state, changed| {
            notices.extend(changed_notice(state, changed, at))
        });
        if let Some(saga) = event.saga() {
            self.send_outstanding_step(&saga);
            self.touched.push(saga);
        }
        self.notice(&event, order_version_before);
        self.batch.events.push(event);
    }

    /// Adds what feeds hear of an event just applied.
    fn notice(&mut self, event: &Event, order_version_before: usize) {
        let state = &self.state;
        let notices = &mut self.batch.notices;
        let account = |id: &AccountId, at| changed_notice(state, Changed::Account(id), at);
        let item = |sku: &Sku, at| changed_notice(state, Changed::Item(sku), at);
        match event {
            Event::BalanceChanged {
                account: id, at, ..
            } => notices.extend(account(id, *at)),
            // The same rule as `State::apply`: a step that changed the account.
            Event::StepApplied {
                key,
                account: id,
                outcome: StepOutcome::Done,
                at,
                ..
            } if key.tag != StepTag::Validate => notices.extend(account(id, *at)),
            Event::PaymentStepAppliedLocally {
                account: id,
                outcome: StepOutcome::Done,
                at,
                ..
            } => notices.extend(account(id, *at)),
            Event::PaymentRunLocally {
                terms,
                outcomes,
                at,
                ..
            } => {
                // Each account as the run left it: a run changes each account at
                // most once (see `run_locally_if_possible`), so each version is seen.
                for (_, id, outcome, _) in local_run_steps(terms, outcomes) {
                    if outcome == StepOutcome::Done {
                        notices.extend(account(id, *at));
                    }
                }
            }
            Event::Restocked { sku, at, .. }
            | Event::Reserved { sku, at, .. }
            | Event::ReservationClosed { sku, at, .. } => notices.extend(item(sku, *at)),
            // (A local run's or rejection's statuses were heard as it went, in `emit`.)
            Event::OrderCreated { id, .. }
            | Event::OrderRefusedLocally { id, .. }
            | Event::OrderStepCompleted { id, .. }
            | Event::OrderEndRequested { id, .. } => {
                let Some(order) = state.orders.get(id) else {
                    return;
                };
                for index in order_version_before..order.history.len() {
                    notices.push(order_notice(order, index));
                }
            }
            _ => {}
        }
    }

    fn record_op(&mut self, command: &Command, outcome: crate::model::OpOutcome) {
        if let Some(key) = decide::op_key(command) {
            self.emit(Event::OpRecorded {
                key,
                record: OpRecord {
                    fingerprint: decide::fingerprint(command),
                    outcome,
                    at: self.now,
                },
                expires_at: self.now.saturating_add(self.limits.retention_ms),
            });
        }
    }

    fn add_waiter(
        &mut self,
        saga: SagaId,
        token: Token,
        wait: WaitFor,
        replayed: bool,
        answer_by: Option<TimestampMs>,
    ) {
        self.batch.new_waiters.push(token);
        self.waiters.entry(saga).or_default().push(Waiter {
            token,
            wait,
            replayed,
            answer_by,
        });
    }

    /// Clients who asked to wait only so long for an order are answered with the
    /// order as it stands (the front turns that into a 202).
    fn answer_overdue_waiters(&mut self) {
        let now = self.now;
        let overdue = |w: &Waiter| w.answer_by.is_some_and(|by| by <= now);
        for (saga, waiters) in self.waiters.iter_mut() {
            let SagaId::Order(id) = saga else {
                continue;
            };
            if !waiters.iter().any(overdue) {
                continue;
            }
            let Some(order) = self.state.orders.get(id) else {
                continue;
            };
            let view = OrderView::from(&**order);
            waiters.retain(|waiter| {
                if !overdue(waiter) {
                    return true;
                }
                let reply = Reply::Order {
                    order: view.clone(),
                    replayed: waiter.replayed,
                };
                self.batch.replies.push((waiter.token, reply));
                false
            });
        }
        self.waiters.retain(|_, waiters| !waiters.is_empty());
    }

    fn send_outstanding_step(&mut self, saga: &SagaId) {
        match saga {
            SagaId::Payment(id) => self.send_payment_step(id),
            SagaId::Order(id) => self.send_order_steps(id),
        }
    }

    fn send_order_steps(&mut self, id: &OrderId) {
        let Some(order) = self.state.orders.get(id) else {
            return;
        };
        let steps = order.outstanding_steps();
        let saga = SagaId::Order(id.clone());
        if steps.is_empty() {
            self.step_sent_at.remove(&saga);
            return;
        }
        self.step_sent_at.insert(saga.clone(), self.now);
        for step in steps {
            let (to, message) = match step {
                OrderStep::Account {
                    account,
                    currency,
                    kind,
                } => (
                    self.router.shard_for(account.as_str()),
                    ShardMessage::Step(StepRequest {
                        saga: saga.clone(),
                        account,
                        currency,
                        kind,
                        reply_to: self.id,
                    }),
                ),
                OrderStep::Line { line, sku, kind } => (
                    self.router.shard_for(sku.as_str()),
                    ShardMessage::LineStep(LineStepRequest {
                        order: id.clone(),
                        line,
                        sku,
                        kind,
                        reply_to: self.id,
                    }),
                ),
            };
            self.send(to, message);
        }
    }

    fn send_payment_step(&mut self, id: &PaymentId) {
        let saga = SagaId::Payment(id.clone());
        let Some(payment) = self.state.payments.get(id) else {
            return;
        };
        match payment.outstanding_step() {
            Some((account, kind)) => {
                let request = StepRequest {
                    saga: saga.clone(),
                    account: account.clone(),
                    currency: payment.terms.currency,
                    kind,
                    reply_to: self.id,
                };
                let to = self.router.shard_for(account.as_str());
                self.step_sent_at.insert(saga, self.now);
                self.send(to, ShardMessage::Step(request));
            }
            None => {
                self.step_sent_at.remove(&saga);
            }
        }
    }

    fn send(&mut self, to: ShardId, message: ShardMessage) {
        if to == self.id {
            self.local.push_back(message);
        } else {
            self.batch.messages.push(Envelope { to, message });
        }
    }

    /// Handles messages addressed to this shard until none are left, then answers
    /// the clients whose payments moved.
    fn drain_local(&mut self) {
        while let Some(message) = self.local.pop_front() {
            match message {
                ShardMessage::Step(request) => self.handle_step(request),
                ShardMessage::StepReply(reply) => self.handle_step_reply(reply),
                ShardMessage::LineStep(request) => self.handle_line_step(request),
                ShardMessage::LineStepReply(reply) => self.handle_line_step_reply(reply),
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for saga in touched {
            self.wake(&saga);
        }
    }

    fn handle_step(&mut self, request: StepRequest) {
        if request.reply_to == self.id {
            if let (
                SagaId::Payment(id),
                StepKind::Debit { .. } | StepKind::Credit { .. } | StepKind::Refund { .. },
            ) = (&request.saga, request.kind)
            {
                let id = id.clone();
                return self.apply_local_payment_step(id, request);
            }
        }
        let (events, outcome) = decide::decide_step(
            &self.state,
            &request.saga,
            &request.account,
            request.currency,
            request.kind,
            self.now,
            self.limits.retention_ms,
        );
        for event in events {
            self.emit(event);
        }
        let reply = StepReply {
            saga: request.saga,
            tag: request.kind.tag(),
            outcome,
        };
        self.send(request.reply_to, ShardMessage::StepReply(reply));
    }

    /// A payment's debit, credit or refund on this very shard: applied and
    /// completed in one event (see `Event::PaymentStepAppliedLocally`). Holds and
    /// their captures and releases keep their step records, which remember what is
    /// held.
    fn apply_local_payment_step(&mut self, id: PaymentId, request: StepRequest) {
        let Some(payment) = self.state.payments.get(&id) else {
            return;
        };
        // A step that is not the outstanding one was applied already (a resend
        // queued before its twin was handled); the payment has moved on.
        let tag = request.kind.tag();
        if payment.outstanding_step().map(|(_, kind)| kind.tag()) != Some(tag) {
            return;
        }
        let result = decide::step_effect(
            &self.state,
            &request.saga,
            &request.account,
            request.currency,
            request.kind,
        );
        let (outcome, effect) = match result {
            Ok(effect) => (StepOutcome::Done, effect),
            Err(rejection) => (StepOutcome::Rejected(rejection), StepEffect::NONE),
        };
        self.emit(Event::PaymentStepAppliedLocally {
            id,
            tag,
            account: request.account,
            outcome,
            effect,
            at: self.now,
        });
    }

    fn handle_line_step(&mut self, request: LineStepRequest) {
        let (events, outcome) = order::decide_line_step(
            &self.state,
            &request.order,
            request.line,
            &request.sku,
            request.kind,
            self.now,
            self.limits.retention_ms,
        );
        for event in events {
            self.emit(event);
        }
        let reply = LineStepReply {
            order: request.order,
            tag: request.kind.tag(request.line),
            outcome,
            price: order::item_price(&self.state, &request.sku),
        };
        self.send(request.reply_to, ShardMessage::LineStepReply(reply));
    }

    fn handle_line_step_reply(&mut self, reply: LineStepReply) {
        self.order_step_completed(reply.order, reply.tag, reply.outcome, reply.price);
    }

    fn order_step_completed(
        &mut self,
        id: OrderId,
        tag: StepTag,
        outcome: StepOutcome,
        price: Option<(rust_decimal::Decimal, Currency)>,
    ) {
        let Some(order) = self.state.orders.get(&id) else {
            return;
        };
        if !order.expects(tag, outcome) {
            if order.awaits(tag) {
                tracing::error!(order = %id, ?tag, ?outcome, "an authorized order's step was refused; it will be resent");
            }
            return;
        }
        self.emit(Event::OrderStepCompleted {
            id,
            tag,
            outcome,
            price,
            at: self.now,
        });
    }

    fn handle_step_reply(&mut self, reply: StepReply) {
        let id = match reply.saga {
            SagaId::Payment(id) => id,
            SagaId::Order(id) => {
                return self.order_step_completed(id, reply.tag, reply.outcome, None)
            }
        };
        let Some(payment) = self.state.payments.get(&id) else {
            return;
        };
        // A reply that does not match the outstanding step is a duplicate or a
        // late answer to an earlier send; the saga has moved on.
        let expected = payment.outstanding_step().map(|(_, kind)| kind.tag());
        if expected != Some(reply.tag) {
            return;
        }
        self.emit(Event::PaymentStepCompleted {
            id,
            tag: reply.tag,
            outcome: reply.outcome,
            at: self.now,
        });
    }

    fn wake(&mut self, saga: &SagaId) {
        let Some(waiters) = self.waiters.remove(saga) else {
            return;
        };
        let mut still_waiting = Vec::new();
        for waiter in waiters {
            match decide::wake(&self.state, saga, waiter.wait) {
                Some(reply) => {
                    let reply = if waiter.replayed {
                        reply.into_replayed()
                    } else {
                        reply
                    };
                    self.batch.replies.push((waiter.token, reply));
                }
                None => still_waiting.push(waiter),
            }
        }
        if !still_waiting.is_empty() {
            self.waiters.insert(saga.clone(), still_waiting);
        }
    }
}

fn saga_of(command: &Command) -> Option<SagaId> {
    match command {
        Command::CreatePayment { id, .. }
        | Command::CapturePayment { id, .. }
        | Command::VoidPayment { id, .. } => Some(SagaId::Payment(id.clone())),
        Command::CreateOrder { id, .. } | Command::CancelOrder { id, .. } => {
            Some(SagaId::Order(id.clone()))
        }
        _ => None,
    }
}

/// What feeds hear of an order's status at `index` in its history.
fn order_notice(order: &order::Order, index: usize) -> Notice {
    let (status, at) = order.history[index];
    Notice::Order {
        id: order.id.clone(),
        account: order.terms.account.clone(),
        status,
        previous: index.checked_sub(1).map(|i| order.history[i].0),
        reason: if status.is_final() {
            order.reason
        } else {
            None
        },
        version: index as u64 + 1,
        at,
    }
}

/// What feeds hear of an account, an item or an order's latest status as it
/// stands in `state`.
fn changed_notice(state: &State, changed: Changed<'_>, at: TimestampMs) -> Option<Notice> {
    match changed {
        Changed::Order(id) => state.orders.get(id).and_then(|order| {
            let latest = order.history.len().checked_sub(1)?;
            Some(order_notice(order, latest))
        }),
        Changed::Account(id) => state.accounts.get(id).map(|account| Notice::Account {
            account: account.into(),
            at,
        }),
        Changed::Item(sku) => state.items.get(sku).map(|item| Notice::Item {
            item: item.into(),
            at,
        }),
    }
}

/// The time an event happened, to keep the shard clock monotonic across restarts.
fn event_time(event: &Event) -> Option<TimestampMs> {
    match event {
        Event::AccountCreated { at, .. }
        | Event::BalanceChanged { at, .. }
        | Event::PaymentCreated { at, .. }
        | Event::PaymentStepCompleted { at, .. }
        | Event::PaymentStepAppliedLocally { at, .. }
        | Event::PaymentRunLocally { at, .. }
        | Event::PaymentCaptureRequested { at, .. }
        | Event::PaymentReleaseRequested { at, .. }
        | Event::StepApplied { at, .. }
        | Event::ItemCreated { at, .. }
        | Event::Restocked { at, .. }
        | Event::Reserved { at, .. }
        | Event::ReservationClosed { at, .. }
        | Event::OrderCreated { at, .. }
        | Event::OrderRefusedLocally { at, .. }
        | Event::OrderRunLocally { at, .. }
        | Event::OrderRejectedLocally { at, .. }
        | Event::OrderStepCompleted { at, .. }
        | Event::OrderEndRequested { at, .. }
        | Event::LineStepApplied { at, .. } => Some(*at),
        Event::OpRecorded { record, .. } => Some(record.at),
        Event::RecordsPruned { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> ShardCore {
        ShardCore::new(
            ShardId(0),
            Router::new(1),
            ShardLimits::default(),
            State::new(0),
        )
    }

    #[test]
    fn a_written_batchs_buffers_are_reused_by_a_later_batch() {
        let mut core = core();
        let written = |events: usize| Batch {
            events: Vec::with_capacity(events),
            notices: Vec::with_capacity(events),
            ..Batch::default()
        };
        core.take_batch();
        // The batch now open started before the buffers came back; the next gets
        // them, emptied.
        core.recycle(written(4_096));
        assert_eq!(core.take_batch().events.capacity(), 0);
        let reused = core.take_batch();
        assert!(reused.events.capacity() >= 4_096 && reused.notices.capacity() >= 4_096);
        assert!(reused.events.is_empty() && reused.notices.is_empty());
        assert_eq!(
            core.take_batch().events.capacity(),
            0,
            "one spare at a time"
        );
        core.recycle(written(SPARE_EVENTS_CAPACITY_MAX + 1));
        core.take_batch();
        assert_eq!(core.take_batch().events.capacity(), 0, "too big to keep");
    }
}
