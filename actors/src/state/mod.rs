//! A shard's state and `apply`, the only function that changes it.
//!
//! `apply` is a dispatcher: each event is applied by the child module of its
//! concept, so each concept has a file of the same name here, in `decide` and in
//! `shard`:
//!
//! * `accounts`: accounts, deposits and withdrawals, and the account owner's
//!   side of saga steps (the step records that make them idempotent).
//! * `payments`: a payment's progress through its saga, on its coordinator.
//! * `stock`: items, reservations, and the item owner's side of order lines.
//! * `orders`: an order's progress through its saga, on its coordinator.
//! * `idempotency`: operation records, and the pruning of every kind of record.
//! * `local`: the same-shard fast paths, where a whole saga is one event.
//!
//! And one for what all concepts share: `archive`, finished entities queued for
//! the archive, leaving memory once it has them, and recalled from it.

mod accounts;
mod archive;
mod idempotency;
mod local;
mod orders;
mod payments;
mod stock;

pub use local::local_run_steps;

use crate::archive::ArchiveKey;
use crate::domain::{AccountId, OrderId, PaymentId, Sku, TimestampMs};
use crate::event::Event;
use crate::filter::UndoFilter;
use crate::model::{
    Account, Item, OpKey, OpRecord, Payment, Reservation, ReservationKey, StepKey, StepRecord,
    TimerKey,
};
use crate::order::Order;
use crate::router::ShardId;
use crate::table::{StateHasher, UndoLog, UndoMap, UndoQueue, UndoSet};
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
    /// Finished payments, orders and reservations not yet archived, with the
    /// sequence number and time of the event that finished them (see
    /// `crate::archive`).
    /// Last, and defaulted: a snapshot from before it decodes with none.
    #[serde(default)]
    pub finished: UndoMap<ArchiveKey, (u64, TimestampMs)>,
    /// The same entries in the order they finished, so that a round for the
    /// archive and an eviction read only what they take.
    #[serde(default)]
    pub finished_queue: UndoQueue<(u64, TimestampMs, ArchiveKey)>,
    /// Every key that left memory for the archive: a command naming a key the
    /// filter has certainly never seen needs no lookup (see `crate::archive`).
    #[serde(default)]
    pub archived_keys: UndoFilter,
    /// Per coordinator shard, the highest floor it has sent this one (see
    /// [`crate::model::StepOrigin`]). Defaulted, as every field from here on.
    #[serde(default)]
    pub step_floors: UndoMap<ShardId, u64>,
    /// The stamped records of `steps` by sender and stamp, to go when the
    /// sender's floor passes the stamp: every one but an active hold's, which
    /// joins once its release or capture closes it (under the closing step's
    /// origin). Always `Some`; `None` sorts first, so it bounds ranges.
    #[serde(default)]
    pub step_stamps: UndoSet<(ShardId, u64, Option<StepKey>)>,
}

/// What an event changed in its middle (see `State::apply_with`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed<'a> {
    Account(&'a AccountId),
    Item(&'a Sku),
    /// The order took on a new status (the last in its history).
    Order(&'a OrderId),
}

/// Undoable tables in a state (see `State::tables`).
const TABLES: usize = 13;

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
            finished: UndoMap::with_hasher(hasher.clone()),
            archived_keys: UndoFilter::default(),
            finished_queue: UndoQueue::default(),
            step_floors: UndoMap::with_hasher(hasher.clone()),
            step_stamps: UndoSet::default(),
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
        self.steps.rehash(hasher.clone());
        self.step_floors.rehash(hasher.clone());
        self.finished.rehash(hasher);
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
            + self.finished.len()
            + self.step_stamps.len()
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
            &self.finished,
            &self.archived_keys,
            &self.finished_queue,
            &self.step_floors,
            &self.step_stamps,
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
            &mut self.finished,
            &mut self.archived_keys,
            &mut self.finished_queue,
            &mut self.step_floors,
            &mut self.step_stamps,
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
    #[expect(
        clippy::too_many_lines,
        reason = "the dispatcher: one arm per event variant, each a call into its concept's module"
    )]
    pub fn apply_with(&mut self, event: &Event, changed: &mut dyn FnMut(&State, Changed<'_>)) {
        self.last_seq += 1;
        match event {
            Event::AccountCreated {
                id,
                currency,
                overdraft_limit,
                at,
            } => self.create_account(id, *currency, *overdraft_limit, *at),
            Event::BalanceChanged { account, delta, .. } => self.change_balance(account, *delta),
            Event::StepApplied {
                key,
                account,
                outcome,
                effect,
                amount,
                expires_at,
                at,
                origin,
            } => self.apply_step(
                key,
                account,
                *outcome,
                *effect,
                *amount,
                *expires_at,
                *at,
                *origin,
            ),
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
            Event::PaymentCaptureRequested { id, amount, at } => {
                self.request_capture(id, *amount, *at)
            }
            Event::PaymentReleaseRequested { id, ending, at } => {
                self.request_release(id, *ending, *at)
            }
            Event::ItemCreated {
                sku,
                price,
                currency,
                stock,
                at,
            } => self.create_item(sku, *price, *currency, *stock, *at),
            Event::Restocked { sku, quantity, .. } => self.restock(sku, *quantity),
            Event::Reserved {
                sku,
                id,
                quantity,
                ttl_ms,
                expires_at,
                at,
            } => self.reserve(sku, id, *quantity, *ttl_ms, *expires_at, *at),
            Event::ReservationClosed {
                sku, id, status, ..
            } => self.close_reservation(sku, id, *status),
            // `expires_at` is the archive's to keep (see `apply_line_step`).
            Event::LineStepApplied {
                key,
                outcome,
                at,
                origin,
                ..
            } => self.apply_line_step(key, *outcome, *at, *origin),
            Event::OrderCreated {
                id,
                terms,
                deadline,
                at,
            } => self.create_order(id, terms, *deadline, *at),
            Event::OrderStepCompleted {
                id,
                tag,
                outcome,
                price,
                at,
            } => self.complete_order_step(id, *tag, *outcome, *price, *at),
            Event::OrderEndRequested { id, ending, at } => self.request_order_end(id, *ending, *at),
            // `expires_at` is the archive's to keep (see `record_op`).
            Event::OpRecorded { key, record, .. } => self.record_op(key, record),
            Event::RecordsPruned { ops, steps } => self.prune_records(ops, steps),
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
            } => self.run_payment_locally(id, terms, outcomes, *at),
            Event::OrderRefusedLocally {
                id,
                terms,
                deadline,
                refusals,
                at,
            } => self.refuse_order_locally(id, terms, *deadline, refusals, *at),
            Event::OrderRunLocally {
                id,
                terms,
                deadline,
                unit_prices,
                currency,
                at,
            } => {
                let run = local::JournaledRun {
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
            Event::EntitiesArchived { through_seq } => self.evict_archived(*through_seq),
            Event::EntityRecalled { entity, at } => self.recall(entity, *at),
            Event::StepFloorRaised { from, floor } => self.raise_step_floor(*from, *floor),
        }
        self.note_finished(event);
    }

    #[inline]
    fn account_mut(&mut self, id: &AccountId) -> &mut Account {
        self.accounts
            .get_mut(id)
            .unwrap_or_else(|| panic!("journal names unknown account {id}"))
    }

    /// The payment to change: copied first if a snapshot still shares it.
    #[inline]
    fn payment_mut(&mut self, id: &PaymentId) -> &mut Payment {
        Arc::make_mut(
            self.payments
                .get_mut(id)
                .unwrap_or_else(|| panic!("journal names unknown payment {id}")),
        )
    }

    /// The order to change: copied first if a snapshot still shares it.
    #[inline]
    fn order_mut(&mut self, id: &OrderId) -> &mut Order {
        Arc::make_mut(
            self.orders
                .get_mut(id)
                .unwrap_or_else(|| panic!("journal names unknown order {id}")),
        )
    }

    #[inline]
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
