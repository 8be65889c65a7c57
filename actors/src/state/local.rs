//! The same-shard fast paths: a payment or an order whose every party lives on
//! its coordinator's shard runs as one event, which applies each step of its saga
//! in the saga's order, exactly as the saga's own events would.

use super::{Changed, State};
use crate::domain::{AccountId, Currency, OrderId, PaymentId, ReservationId, TimestampMs};
use crate::model::{
    PaymentTerms, Reservation, ReservationKey, ReservationStatus, StepEffect, StepOutcome, StepTag,
};
use crate::order::{Order, OrderStatus, OrderTerms, ReportedPrice};
use crate::rejection::Rejection;
use rust_decimal::Decimal;
use std::sync::Arc;

/// What `Event::OrderRunLocally` journals beside the order's id and terms.
pub(super) struct JournaledRun<'a> {
    pub(super) deadline: TimestampMs,
    pub(super) unit_prices: &'a [Decimal],
    pub(super) currency: Currency,
    pub(super) at: TimestampMs,
}

/// The steps of a local run (`Event::PaymentRunLocally`), in saga order: the debit
/// of `from`, then, once it is done, the credit of `to`. A refused step has no
/// effect. (A run whose credit is refused is not journaled as one event.)
pub fn local_run_steps<'a>(
    terms: &'a PaymentTerms,
    outcomes: &'a [StepOutcome],
) -> impl Iterator<Item = (StepTag, &'a AccountId, StepOutcome, StepEffect)> + 'a {
    let amount = terms.amount;
    let steps = [
        (StepTag::Debit, &terms.from, -amount),
        (StepTag::Credit, &terms.to, amount),
    ];
    steps
        .into_iter()
        .zip(outcomes)
        .map(|((tag, account, balance_delta), outcome)| {
            let effect = match outcome {
                StepOutcome::Done => StepEffect {
                    balance_delta,
                    held_delta: Decimal::ZERO,
                },
                StepOutcome::Rejected(_) => StepEffect::NONE,
            };
            (tag, account, *outcome, effect)
        })
}

impl State {
    /// `Event::PaymentRunLocally`: the debit and the credit of a one-phase payment,
    /// in saga order, and the payment's end.
    pub(super) fn run_payment_locally(
        &mut self,
        id: &PaymentId,
        terms: &PaymentTerms,
        outcomes: &[StepOutcome],
        at: TimestampMs,
    ) {
        self.create_payment(id, terms, None, at);
        for (tag, account, outcome, effect) in local_run_steps(terms, outcomes) {
            self.apply_local_step(id, tag, account, outcome, effect, at);
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

    /// A payment's step on an account of its coordinator's own shard: the account's
    /// change and the payment's move together.
    pub(super) fn apply_local_step(
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

    /// `Event::OrderRefusedLocally`: an order every line of which its items' shard
    /// refused, created and ended in one event.
    pub(super) fn refuse_order_locally(
        &mut self,
        id: &OrderId,
        terms: &OrderTerms,
        deadline: TimestampMs,
        refusals: &[(Rejection, ReportedPrice)],
        at: TimestampMs,
    ) {
        // The journal's own shape: stays on in release builds, since a journal
        // that says otherwise is corrupt.
        assert_eq!(
            refusals.len(),
            terms.lines.len(),
            "local refusal of order {id} has one refusal per line"
        );
        let mut order = Order::new(id.clone(), terms.clone(), deadline, at);
        for (index, (refusal, price)) in refusals.iter().enumerate() {
            let tag = StepTag::ReserveLine(index as u16);
            order.on_reply(tag, StepOutcome::Rejected(*refusal), *price, at);
        }
        assert!(
            order.is_final() && order.status == OrderStatus::Rejected,
            "local refusal of order {id} did not reject it"
        );
        // Created and ended in one event: its deadline timer would be filed and
        // taken out again, so it is never filed.
        self.orders.insert(id.clone(), Arc::new(order));
    }

    /// `Event::OrderRunLocally`: the saga's steps in the saga's order, each with the
    /// effect its step would have had, and the order moved by each answer exactly
    /// as `OrderStepCompleted` moves it. `changed` hears every version of every
    /// account, item and order status the run goes through, in that order.
    pub(super) fn run_order_locally(
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
    pub(super) fn reject_order_locally(
        &mut self,
        id: &OrderId,
        terms: &OrderTerms,
        deadline: TimestampMs,
        answers: &[(StepOutcome, ReportedPrice)],
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
        price: Option<(Decimal, Currency)>,
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
}
