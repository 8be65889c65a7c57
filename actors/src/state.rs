//! A shard's state and `apply`, the only function that changes it.

use crate::domain::{AccountId, OrderId, PaymentId, ReservationId, Sku, TimestampMs};
use crate::event::{local_run_steps, Event};
use crate::model::{
    Account, Ending, FirstOutcome, Item, OpKey, OpRecord, Payment, PaymentStatus, PaymentTerms,
    Reservation, ReservationKey, ReservationStatus, Stage, StepEffect, StepKey, StepOutcome,
    StepRecord, StepTag, TimerKey,
};
use crate::order::{Order, OrderStage, OrderStatus, OrderTerms};
use crate::rejection::Rejection;
use crate::table::{StateHasher, UndoLog, UndoMap, UndoSet};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Everything a shard owns. Serialized whole (MessagePack) as a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub accounts: UndoMap<AccountId, Account>,
    /// Behind a pointer: a payment is ~200 bytes and the map holds every payment of
    /// the retention period, so inline values made every probe and every resize of
    /// a multi-million-entry table touch ~10x the memory (perf: the map's insert and
    /// the kernel zeroing its fresh pages led the shard's profile). Shared (`Arc`),
    /// so that a snapshot's copy of the state copies pointers, not payments; a
    /// payment changed while a snapshot holds it is copied then (`payment_mut`).
    pub payments: UndoMap<PaymentId, Arc<Payment>>,
    pub items: UndoMap<Sku, Item>,
    pub reservations: UndoMap<ReservationKey, Reservation>,
    /// Orders this shard coordinates.
    /// Shared pointers for the same reasons as `payments`.
    pub orders: UndoMap<OrderId, Arc<Order>>,
    /// Idempotency records of non-creating operations.
    pub ops: UndoMap<OpKey, OpRecord>,
    /// Saga steps this shard has handled as an account owner.
    pub steps: UndoMap<StepKey, StepRecord>,
    /// Deadlines: hold and reservation expiry, record retention.
    pub timers: UndoSet<(TimestampMs, TimerKey)>,
    /// Sequence number of the last applied event.
    pub last_seq: u64,
}

/// What an event changed in its middle (see `State::apply_with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed<'a> {
    Account(&'a AccountId),
    Item(&'a Sku),
    /// The order took on a new status (the last in its history).
    Order(&'a OrderId),
}

/// What `Event::OrderRunLocally` journals beside the order's id and terms.
struct JournaledRun<'a> {
    deadline: TimestampMs,
    unit_prices: &'a [Decimal],
    currency: crate::domain::Currency,
    at: TimestampMs,
}

/// Undoable tables in a state (see `State::tables`).
const TABLES: usize = 8;

/// How long each of the state's undo logs was when a batch was taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UndoMark([usize; TABLES]);

impl State {
    pub fn new(hash_seed: u64) -> Self {
        let hasher = StateHasher::with_seed(hash_seed);
        Self {
            accounts: UndoMap::with_hasher(hasher.clone()),
            payments: UndoMap::with_hasher(hasher.clone()),
            items: UndoMap::with_hasher(hasher.clone()),
            reservations: UndoMap::with_hasher(hasher.clone()),
            orders: UndoMap::with_hasher(hasher.clone()),
            ops: UndoMap::with_hasher(hasher.clone()),
            steps: UndoMap::with_hasher(hasher.clone()),
            timers: UndoSet::default(),
            last_seq: 0,
        }
    }

    /// Re-hashes every map with `hash_seed`: a state decoded from a snapshot has
    /// the default seed, which would let crafted ids collide again.
    pub fn reseed(&mut self, hash_seed: u64) {
        let hasher = StateHasher::with_seed(hash_seed);
        self.accounts.rehash(hasher.clone());
        self.payments.rehash(hasher.clone());
        self.items.rehash(hasher.clone());
        self.reservations.rehash(hasher.clone());
        self.orders.rehash(hasher.clone());
        self.ops.rehash(hasher.clone());
        self.steps.rehash(hasher);
    }

    /// Entries in all maps: what a snapshot encodes.
    pub fn entries(&self) -> usize {
        self.accounts.len()
            + self.payments.len()
            + self.items.len()
            + self.reservations.len()
            + self.orders.len()
            + self.ops.len()
            + self.steps.len()
            + self.timers.len()
    }

    /// Every table's undo log, in one fixed order (the order of `UndoMark`).
    fn tables(&self) -> [&dyn UndoLog; TABLES] {
        [
            &self.accounts,
            &self.payments,
            &self.items,
            &self.reservations,
            &self.orders,
            &self.ops,
            &self.steps,
            &self.timers,
        ]
    }

    fn tables_mut(&mut self) -> [&mut dyn UndoLog; TABLES] {
        [
            &mut self.accounts,
            &mut self.payments,
            &mut self.items,
            &mut self.reservations,
            &mut self.orders,
            &mut self.ops,
            &mut self.steps,
            &mut self.timers,
        ]
    }

    /// Turns undo recording on (live shard) or off (replay).
    pub fn set_recording(&mut self, recording: bool) {
        for table in self.tables_mut() {
            table.set_recording(recording);
        }
    }

    /// Everything applied so far is durable.
    pub fn commit(&mut self) {
        for table in self.tables_mut() {
            table.commit();
        }
    }

    /// Where every undo log ends now: what a batch taken now has changed.
    pub fn undo_mark(&self) -> UndoMark {
        UndoMark(self.tables().map(|table| table.undo_len()))
    }

    /// The changes up to `mark` are durable; later ones (batches still in
    /// flight) can still be undone.
    pub fn commit_through(&mut self, mark: UndoMark) {
        for (table, entries) in self.tables_mut().into_iter().zip(mark.0) {
            table.commit_first(entries);
        }
    }

    /// Whether nothing is left to undo.
    pub fn undo_is_empty(&self) -> bool {
        self.tables().iter().all(|table| table.undo_len() == 0)
    }

    /// Goes back to the last commit point, as if the batch never happened.
    pub fn rollback(&mut self, last_seq: u64) {
        for table in self.tables_mut() {
            table.rollback();
        }
        self.last_seq = last_seq;
    }

    /// Applies one event. Events were produced by `decide` against this very state,
    /// so an entity an event names exists; a missing one means a corrupt journal,
    /// and the shard must stop rather than guess.
    pub fn apply(&mut self, event: &Event) {
        self.apply_with(event, &mut |_, _| {});
    }

    /// Applies one event, and calls `changed` with the state as it stands after each
    /// change that happens in the middle of the event: an order run locally
    /// (`Event::OrderRunLocally`) changes its payer and its items twice and its own
    /// status four times, and one rejected locally (`Event::OrderRejectedLocally`)
    /// takes each reserved line's stock and gives it back, and feeds must hear
    /// every version, in order. (For every other event, what changed is read from
    /// the state after it.)
    pub fn apply_with(&mut self, event: &Event, changed: &mut dyn FnMut(&State, Changed<'_>)) {
        self.last_seq += 1;
        match event {
            Event::OrderRunLocally {
                id,
                terms,
                deadline,
                unit_prices,
                currency,
                at,
            } => {
                let run = JournaledRun {
                    deadline: *deadline,
                    unit_prices,
                    currency: *currency,
                    at: *at,
                };
                self.run_order_locally(id, terms, run, changed)
            }
            Event::OrderRejectedLocally {
                id,
                terms,
                deadline,
                answers,
                at,
            } => self.reject_order_locally(id, terms, *deadline, answers, *at, changed),
            Event::AccountCreated {
                id,
                currency,
                overdraft_limit,
                at,
            } => {
                self.accounts.insert(
                    id.clone(),
                    Account {
                        id: id.clone(),
                        currency: *currency,
                        balance: Decimal::ZERO,
                        held: Decimal::ZERO,
                        overdraft_limit: *overdraft_limit,
                        version: 0,
                        created_at: *at,
                    },
                );
            }
            Event::BalanceChanged { account, delta, .. } => {
                let account = self.account_mut(account);
                account.balance += *delta;
                account.version += 1;
            }
            Event::OpRecorded {
                key,
                record,
                expires_at,
            } => {
                self.ops.insert(key.clone(), record.clone());
                self.timers.insert((*expires_at, TimerKey::Op(key.clone())));
            }
            Event::PaymentCreated {
                id,
                terms,
                rejected,
                at,
            } => self.create_payment(id, terms, *rejected, *at),
            Event::PaymentStepCompleted {
                id,
                tag,
                outcome,
                at,
            } => self.complete_step(id, *tag, *outcome, *at),
            Event::PaymentStepAppliedLocally {
                id,
                tag,
                account,
                outcome,
                effect,
                at,
            } => self.apply_local_step(id, *tag, account, *outcome, *effect, *at),
            Event::PaymentRunLocally {
                id,
                terms,
                outcomes,
                at,
            } => {
                self.create_payment(id, terms, None, *at);
                for (tag, account, outcome, effect) in local_run_steps(terms, outcomes) {
                    self.apply_local_step(id, tag, account, outcome, effect, *at);
                }
                // The run is the whole payment: it must have ended (stays on in
                // release builds; a journal that says otherwise is corrupt).
                assert!(
                    self.payments
                        .get(id)
                        .is_some_and(|payment| payment.first.is_some()),
                    "local run of payment {id} did not end it"
                );
            }
            Event::PaymentCaptureRequested { id, amount, at } => {
                let payment = self.payment_mut(id);
                payment.stage = Stage::Capture { amount: *amount };
                payment.updated_at = *at;
                let expires_at = payment.hold_expires_at.take();
                self.remove_hold_timer(id, expires_at);
            }
            Event::PaymentReleaseRequested { id, ending, at } => {
                let payment = self.payment_mut(id);
                payment.stage = Stage::Release(*ending);
                payment.updated_at = *at;
                let expires_at = payment.hold_expires_at.take();
                self.remove_hold_timer(id, expires_at);
            }
            Event::StepApplied {
                key,
                account,
                outcome,
                effect,
                amount,
                expires_at,
                at,
            } => {
                if *outcome == StepOutcome::Done && key.tag != StepTag::Validate {
                    let account = self.account_mut(account);
                    account.balance += effect.balance_delta;
                    account.held += effect.held_delta;
                    account.version += 1;
                }
                self.steps.insert(
                    key.clone(),
                    StepRecord {
                        account: Some(account.clone()),
                        outcome: *outcome,
                        amount: *amount,
                        at: *at,
                    },
                );
                self.timers
                    .insert((*expires_at, TimerKey::Step(key.clone())));
                if matches!(key.tag, StepTag::Release | StepTag::Capture) {
                    self.close_hold_record(key, *expires_at);
                }
            }
            Event::ItemCreated {
                sku,
                price,
                currency,
                stock,
                at,
            } => {
                self.items.insert(
                    sku.clone(),
                    Item {
                        sku: sku.clone(),
                        price: *price,
                        currency: *currency,
                        initial_stock: *stock,
                        on_hand: *stock,
                        reserved: 0,
                        version: 0,
                        created_at: *at,
                    },
                );
            }
            Event::Restocked { sku, quantity, .. } => {
                let item = self.item_mut(sku);
                item.on_hand += *quantity;
                item.version += 1;
            }
            Event::Reserved {
                sku,
                id,
                quantity,
                ttl_ms,
                expires_at,
                at,
            } => {
                let item = self.item_mut(sku);
                item.reserved += u64::from(*quantity);
                item.version += 1;
                let key = ReservationKey {
                    sku: sku.clone(),
                    id: id.clone(),
                };
                self.reservations.insert(
                    key.clone(),
                    Reservation {
                        sku: sku.clone(),
                        id: id.clone(),
                        quantity: *quantity,
                        ttl_ms: *ttl_ms,
                        status: ReservationStatus::Held,
                        expires_at: *expires_at,
                        created_at: *at,
                    },
                );
                self.timers
                    .insert((*expires_at, TimerKey::Reservation(key)));
            }
            Event::ReservationClosed {
                sku, id, status, ..
            } => {
                let key = ReservationKey {
                    sku: sku.clone(),
                    id: id.clone(),
                };
                let reservation = self
                    .reservations
                    .get_mut(&key)
                    .expect("journal names an unknown reservation");
                assert_eq!(reservation.status, ReservationStatus::Held);
                reservation.status = *status;
                let quantity = u64::from(reservation.quantity);
                let expires_at = reservation.expires_at;
                let item = self.item_mut(sku);
                item.reserved -= quantity;
                if *status == ReservationStatus::Committed {
                    item.on_hand -= quantity;
                }
                item.version += 1;
                self.timers
                    .remove(&(expires_at, TimerKey::Reservation(key)));
            }
            Event::OrderCreated {
                id,
                terms,
                deadline,
                at,
            } => {
                let order = Order::new(id.clone(), terms.clone(), *deadline, *at);
                self.orders.insert(id.clone(), Arc::new(order));
                self.timers
                    .insert((*deadline, TimerKey::OrderDeadline(id.clone())));
            }
            Event::OrderRefusedLocally {
                id,
                terms,
                deadline,
                refusals,
                at,
            } => {
                // The journal's own shape: stays on in release builds, since a
                // journal that says otherwise is corrupt.
                assert_eq!(
                    refusals.len(),
                    terms.lines.len(),
                    "local refusal of order {id} has one refusal per line"
                );
                let mut order = Order::new(id.clone(), terms.clone(), *deadline, *at);
                for (index, (refusal, price)) in refusals.iter().enumerate() {
                    let tag = StepTag::ReserveLine(index as u16);
                    order.on_reply(tag, StepOutcome::Rejected(*refusal), *price, *at);
                }
                assert!(
                    order.is_final() && order.status == OrderStatus::Rejected,
                    "local refusal of order {id} did not reject it"
                );
                // Created and ended in one event: its deadline timer would be filed
                // and taken out again, so it is never filed.
                self.orders.insert(id.clone(), Arc::new(order));
            }
            Event::OrderStepCompleted {
                id,
                tag,
                outcome,
                price,
                at,
            } => {
                let order = self.order_mut(id);
                order.on_reply(*tag, *outcome, *price, *at);
                if order.stage == OrderStage::Done {
                    let deadline = order.deadline;
                    self.timers
                        .remove(&(deadline, TimerKey::OrderDeadline(id.clone())));
                }
            }
            Event::OrderEndRequested { id, ending, at } => {
                let order = self.order_mut(id);
                order.request_end(*ending, *at);
                let deadline = order.deadline;
                self.timers
                    .remove(&(deadline, TimerKey::OrderDeadline(id.clone())));
            }
            Event::LineStepApplied {
                key,
                outcome,
                expires_at,
                at,
            } => {
                self.steps.insert(
                    key.clone(),
                    StepRecord {
                        account: None,
                        outcome: *outcome,
                        amount: Decimal::ZERO,
                        at: *at,
                    },
                );
                self.timers
                    .insert((*expires_at, TimerKey::Step(key.clone())));
            }
            Event::RecordsPruned { ops, steps } => {
                for (deadline, key) in ops {
                    self.ops.remove(key);
                    self.timers.remove(&(*deadline, TimerKey::Op(key.clone())));
                }
                for (deadline, key) in steps {
                    self.steps.remove(key);
                    self.timers
                        .remove(&(*deadline, TimerKey::Step(key.clone())));
                }
            }
        }
    }

    fn create_payment(
        &mut self,
        id: &PaymentId,
        terms: &PaymentTerms,
        rejected: Option<Rejection>,
        at: TimestampMs,
    ) {
        let mut payment = Payment {
            id: id.clone(),
            terms: terms.clone(),
            status: PaymentStatus::Pending,
            code: None,
            stage: if terms.capture {
                Stage::Debit
            } else {
                Stage::Hold
            },
            captured_amount: Decimal::ZERO,
            hold_expires_at: None,
            first: None,
            created_at: at,
            updated_at: at,
        };
        if let Some(code) = rejected {
            finish(&mut payment, PaymentStatus::Rejected, Some(code), at);
        }
        self.payments.insert(id.clone(), Arc::new(payment));
    }

    /// A payment's step on an account of its coordinator's own shard: the account's
    /// change and the payment's move together.
    fn apply_local_step(
        &mut self,
        id: &PaymentId,
        tag: StepTag,
        account: &AccountId,
        outcome: StepOutcome,
        effect: StepEffect,
        at: TimestampMs,
    ) {
        if outcome == StepOutcome::Done {
            let account = self.account_mut(account);
            account.balance += effect.balance_delta;
            account.held += effect.held_delta;
            account.version += 1;
        }
        self.complete_step(id, tag, outcome, at);
    }

    fn complete_step(&mut self, id: &PaymentId, tag: StepTag, outcome: StepOutcome, at: u64) {
        let payment = self.payment_mut(id);
        payment.updated_at = at;
        let amount = payment.terms.amount;
        let hold_timeout_ms = payment.terms.hold_timeout_ms;
        let mut hold_timer = None;
        match (payment.stage, outcome) {
            (Stage::Debit, StepOutcome::Done) => payment.stage = Stage::Credit,
            (Stage::Credit, StepOutcome::Done) => {
                payment.captured_amount = amount;
                finish(payment, PaymentStatus::Settled, None, at);
            }
            (Stage::Credit, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Refund { amount, code };
            }
            (Stage::CaptureCredit { amount }, StepOutcome::Done) => {
                payment.captured_amount = amount;
                finish(payment, PaymentStatus::Captured, None, at);
            }
            // Accounts never disappear or change currency, so a credit after a
            // successful validation cannot fail; if it ever does, the money goes
            // back to the payer rather than vanish.
            (Stage::CaptureCredit { amount }, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Refund { amount, code };
            }
            (Stage::Refund { code, .. }, StepOutcome::Done) => {
                finish(payment, PaymentStatus::Rejected, Some(code), at);
            }
            (Stage::Hold, StepOutcome::Done) => payment.stage = Stage::Validate,
            (Stage::Validate, StepOutcome::Done) => {
                let expires_at = at.saturating_add(hold_timeout_ms);
                payment.stage = Stage::Authorized;
                payment.status = PaymentStatus::Authorized;
                payment.hold_expires_at = Some(expires_at);
                set_first(payment, at);
                hold_timer = Some(expires_at);
            }
            (Stage::Validate, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Release(Ending::Rejected(code));
            }
            (Stage::Release(ending), StepOutcome::Done) => {
                let (status, code) = match ending {
                    Ending::Rejected(code) => (PaymentStatus::Rejected, Some(code)),
                    Ending::Voided => (PaymentStatus::Voided, None),
                    Ending::Expired => (PaymentStatus::Expired, None),
                };
                finish(payment, status, code, at);
            }
            (Stage::Capture { amount }, StepOutcome::Done) => {
                payment.stage = Stage::CaptureCredit { amount };
            }
            // A capture is refused only when the hold is already gone, which only
            // this coordinator can cause. Make sure of it and end the payment.
            (Stage::Capture { .. }, StepOutcome::Rejected(_)) => {
                payment.stage = Stage::Release(Ending::Expired);
            }
            (Stage::Debit | Stage::Hold, StepOutcome::Rejected(code)) => {
                finish(payment, PaymentStatus::Rejected, Some(code), at);
            }
            (stage, outcome) => {
                // `decide` only records replies that match the stage.
                panic!("step {tag:?} {outcome:?} does not fit payment {id} at {stage:?}")
            }
        }
        if let Some(expires_at) = hold_timer {
            self.timers
                .insert((expires_at, TimerKey::PaymentHold(id.clone())));
        }
    }

    /// `Event::OrderRunLocally`: the saga's steps in the saga's order, each with the
    /// effect its step would have had, and the order moved by each answer exactly
    /// as `OrderStepCompleted` moves it. `changed` hears every version of every
    /// account, item and order status the run goes through, in that order.
    fn run_order_locally(
        &mut self,
        id: &OrderId,
        terms: &OrderTerms,
        run: JournaledRun<'_>,
        changed: &mut dyn FnMut(&State, Changed<'_>),
    ) {
        // The journal's own shape: stays on in release builds, since a journal
        // that says otherwise is corrupt.
        assert_eq!(
            run.unit_prices.len(),
            terms.lines.len(),
            "local run of order {id} has one price per line"
        );
        let at = run.at;
        let order = Order::new(id.clone(), terms.clone(), run.deadline, at);
        self.orders.insert(id.clone(), Arc::new(order));
        changed(self, Changed::Order(id));
        let keys: Vec<ReservationKey> = (0..terms.lines.len())
            .map(|index| ReservationKey {
                sku: terms.lines[index].sku.clone(),
                id: ReservationId::for_order_line(id, index as u16),
            })
            .collect();
        for (index, (line, key)) in terms.lines.iter().zip(&keys).enumerate() {
            self.reserve_line_locally(id, key, line.quantity.get(), at);
            changed(self, Changed::Item(&line.sku));
            let price = Some((run.unit_prices[index], run.currency));
            let tag = StepTag::ReserveLine(index as u16);
            self.answer_locally(id, tag, StepOutcome::Done, price, at, changed);
        }
        // The order priced its lines as the saga would (`Order::on_reply`).
        let total = self
            .orders
            .get(id)
            .and_then(|order| order.total)
            .unwrap_or_else(|| panic!("local run of order {id} did not price it"));
        let payer = self.account_mut(&terms.account);
        payer.held += total;
        payer.version += 1;
        changed(self, Changed::Account(&terms.account));
        self.answer_locally(id, StepTag::Hold, StepOutcome::Done, None, at, changed);
        // Checking the merchant changes nothing.
        self.answer_locally(id, StepTag::Validate, StepOutcome::Done, None, at, changed);
        for (index, (line, key)) in terms.lines.iter().zip(&keys).enumerate() {
            self.close_line_locally(key, ReservationStatus::Committed);
            changed(self, Changed::Item(&line.sku));
            let tag = StepTag::CommitLine(index as u16);
            self.answer_locally(id, tag, StepOutcome::Done, None, at, changed);
        }
        let payer = self.account_mut(&terms.account);
        payer.balance -= total;
        payer.held -= total;
        payer.version += 1;
        changed(self, Changed::Account(&terms.account));
        self.answer_locally(id, StepTag::Capture, StepOutcome::Done, None, at, changed);
        let merchant = self.account_mut(&terms.merchant);
        merchant.balance += total;
        merchant.version += 1;
        changed(self, Changed::Account(&terms.merchant));
        self.answer_locally(id, StepTag::Credit, StepOutcome::Done, None, at, changed);
        self.assert_ended_locally(id, OrderStatus::Confirmed);
    }

    /// `Event::OrderRejectedLocally`: the order created, each line's reservation
    /// answered in line order (a reserved line takes its stock as
    /// `order::decide_line_step` would), then each reserved line given back, and
    /// the order moved by each answer exactly as `OrderStepCompleted` moves it.
    /// `changed` hears every version of every item and order status the saga goes
    /// through, in that order.
    fn reject_order_locally(
        &mut self,
        id: &OrderId,
        terms: &OrderTerms,
        deadline: TimestampMs,
        answers: &[(StepOutcome, crate::order::ReportedPrice)],
        at: TimestampMs,
        changed: &mut dyn FnMut(&State, Changed<'_>),
    ) {
        // The journal's own shape: stays on in release builds, since a journal
        // that says otherwise is corrupt.
        assert_eq!(
            answers.len(),
            terms.lines.len(),
            "local rejection of order {id} has one answer per line"
        );
        let order = Order::new(id.clone(), terms.clone(), deadline, at);
        self.orders.insert(id.clone(), Arc::new(order));
        changed(self, Changed::Order(id));
        // Each reserved line's reservation key; none for a refused line.
        let keys: Vec<Option<ReservationKey>> = (0..terms.lines.len())
            .map(|index| {
                (answers[index].0 == StepOutcome::Done).then(|| ReservationKey {
                    sku: terms.lines[index].sku.clone(),
                    id: ReservationId::for_order_line(id, index as u16),
                })
            })
            .collect();
        for (index, (line, key)) in terms.lines.iter().zip(&keys).enumerate() {
            if let Some(key) = key {
                self.reserve_line_locally(id, key, line.quantity.get(), at);
                changed(self, Changed::Item(&line.sku));
            }
            let (outcome, price) = answers[index];
            let tag = StepTag::ReserveLine(index as u16);
            self.answer_locally(id, tag, outcome, price, at, changed);
        }
        for (index, key) in keys.iter().enumerate() {
            let Some(key) = key else { continue };
            self.close_line_locally(key, ReservationStatus::Released);
            changed(self, Changed::Item(&key.sku));
            let tag = StepTag::ReleaseLine(index as u16);
            self.answer_locally(id, tag, StepOutcome::Done, None, at, changed);
        }
        self.assert_ended_locally(id, OrderStatus::Rejected);
    }

    /// An order created and ended in one event has the status the event decided.
    /// Its deadline timer would have been filed and taken out again, so it never
    /// was. Stays on in release builds: a journal that says otherwise is corrupt.
    fn assert_ended_locally(&self, id: &OrderId, status: OrderStatus) {
        let order = self.orders.get(id).expect("created in this event");
        assert!(
            order.is_final() && order.status == status,
            "order {id} run in one event ended {:?}, not {status:?}",
            order.status
        );
    }

    /// What an order line's reservation step does on the item's shard (see
    /// `order::decide_line_step`), for an order run or rejected in one event. The
    /// reservation never expires on its own, and the event closes it before it
    /// ends, so no expiry timer is filed.
    fn reserve_line_locally(
        &mut self,
        id: &OrderId,
        key: &ReservationKey,
        quantity: u32,
        at: TimestampMs,
    ) {
        self.reservations.insert(
            key.clone(),
            Reservation {
                sku: key.sku.clone(),
                id: key.id.clone(),
                quantity,
                ttl_ms: 0,
                status: ReservationStatus::Held,
                expires_at: TimestampMs::MAX,
                created_at: at,
            },
        );
        let item = self.item_mut(&key.sku);
        item.reserved += u64::from(quantity);
        item.version += 1;
        // No oversell (stays on in release builds).
        assert!(
            item.reserved <= item.on_hand,
            "local step of order {id} oversells {item:?}"
        );
    }

    /// What closing an order line's reservation does on the item's shard (as
    /// `Event::ReservationClosed` does, for a reservation this event made and
    /// filed no expiry for): committed stock leaves the item, released stock goes
    /// back to it.
    fn close_line_locally(&mut self, key: &ReservationKey, status: ReservationStatus) {
        let reservation = self
            .reservations
            .get_mut(key)
            .expect("reserved earlier in this event");
        reservation.status = status;
        let quantity = u64::from(reservation.quantity);
        let item = self.item_mut(&key.sku);
        item.reserved -= quantity;
        if status == ReservationStatus::Committed {
            item.on_hand -= quantity;
        }
        item.version += 1;
    }

    /// A local step of an order is answered: the order moves as
    /// `OrderStepCompleted` moves it, and `changed` hears of a new status.
    fn answer_locally(
        &mut self,
        id: &OrderId,
        tag: StepTag,
        outcome: StepOutcome,
        price: Option<(Decimal, crate::domain::Currency)>,
        at: TimestampMs,
        changed: &mut dyn FnMut(&State, Changed<'_>),
    ) {
        let order = self.order_mut(id);
        let statuses = order.history.len();
        order.on_reply(tag, outcome, price, at);
        if order.history.len() > statuses {
            changed(self, Changed::Order(id));
        }
    }

    /// The hold of `closing`'s payment is gone: its step record, kept while the hold
    /// was active, now ages out together with the record of the step that closed it.
    fn close_hold_record(&mut self, closing: &StepKey, expires_at: TimestampMs) {
        let hold = TimerKey::Step(StepKey {
            saga: closing.saga.clone(),
            tag: StepTag::Hold,
        });
        let open = (crate::decide::HOLD_OPEN_DEADLINE, hold);
        if self.timers.contains(&open) {
            self.timers.remove(&open);
            self.timers.insert((expires_at, open.1));
        }
    }

    fn remove_hold_timer(&mut self, id: &PaymentId, expires_at: Option<TimestampMs>) {
        if let Some(expires_at) = expires_at {
            self.timers
                .remove(&(expires_at, TimerKey::PaymentHold(id.clone())));
        }
    }

    fn account_mut(&mut self, id: &AccountId) -> &mut Account {
        self.accounts
            .get_mut(id)
            .unwrap_or_else(|| panic!("journal names unknown account {id}"))
    }

    /// The payment to change: copied first if a snapshot still shares it.
    fn payment_mut(&mut self, id: &PaymentId) -> &mut Payment {
        Arc::make_mut(
            self.payments
                .get_mut(id)
                .unwrap_or_else(|| panic!("journal names unknown payment {id}")),
        )
    }

    /// The order to change: copied first if a snapshot still shares it.
    fn order_mut(&mut self, id: &OrderId) -> &mut Order {
        Arc::make_mut(
            self.orders
                .get_mut(id)
                .unwrap_or_else(|| panic!("journal names unknown order {id}")),
        )
    }

    fn item_mut(&mut self, sku: &Sku) -> &mut Item {
        self.items
            .get_mut(sku)
            .unwrap_or_else(|| panic!("journal names unknown item {sku}"))
    }

    /// Sum of all balances plus money in flight in this shard's payments: summed
    /// over all shards, it equals deposits minus withdrawals at every instant.
    pub fn money_total(&self) -> Decimal {
        let balances: Decimal = self.accounts.values().map(|a| a.balance).sum();
        let in_flight: Decimal = self.payments.values().map(|p| p.in_flight()).sum();
        let orders_in_flight: Decimal = self.orders.values().map(|o| o.in_flight()).sum();
        balances + in_flight + orders_in_flight
    }
}

fn set_first(payment: &mut Payment, at: TimestampMs) {
    if payment.first.is_none() {
        payment.first = Some(FirstOutcome {
            status: payment.status,
            code: payment.code,
            at,
        });
    }
}

fn finish(payment: &mut Payment, status: PaymentStatus, code: Option<crate::Rejection>, at: u64) {
    payment.stage = Stage::Done;
    payment.status = status;
    payment.code = code;
    payment.updated_at = at;
    set_first(payment, at);
}
