//! Notices: what feeds hear of each event, read from the state as the event left
//! it (or, for an event that changes something twice, as it went).

use super::ShardCore;
use crate::command::{PaymentView, ReservationView};
use crate::domain::{AccountId, Sku, TimestampMs};
use crate::event::Event;
use crate::model::{PaymentStatus, ReservationKey, SagaId, StepOutcome, StepTag};
use crate::notice::Notice;
use crate::order;
use crate::state::{local_run_steps, Changed, State};

/// How many statuses the order an event moves had before it: the notices of the
/// statuses after are the event's.
pub(super) fn order_version_before(state: &State, event: &Event) -> usize {
    match event {
        Event::OrderStepCompleted { id, .. } | Event::OrderEndRequested { id, .. } => {
            state.orders.get(id).map_or(0, |o| o.history.len())
        }
        // An order created by the event starts from none.
        Event::AccountCreated { .. }
        | Event::BalanceChanged { .. }
        | Event::OpRecorded { .. }
        | Event::PaymentCreated { .. }
        | Event::PaymentStepCompleted { .. }
        | Event::PaymentCaptureRequested { .. }
        | Event::PaymentReleaseRequested { .. }
        | Event::StepApplied { .. }
        | Event::ItemCreated { .. }
        | Event::Restocked { .. }
        | Event::Reserved { .. }
        | Event::ReservationClosed { .. }
        | Event::OrderCreated { .. }
        | Event::LineStepApplied { .. }
        | Event::RecordsPruned { .. }
        | Event::PaymentStepAppliedLocally { .. }
        | Event::PaymentRunLocally { .. }
        | Event::OrderRefusedLocally { .. }
        | Event::OrderRunLocally { .. }
        | Event::OrderRejectedLocally { .. }
        | Event::EntitiesArchived { .. }
        | Event::EntityRecalled { .. }
        | Event::StepFloorRaised { .. } => 0,
    }
}

/// The status of the payment an event moves, before it (change data capture
/// reports a payment's status only when it changes).
pub(super) fn payment_status_before(state: &State, event: &Event) -> Option<PaymentStatus> {
    match event.saga()? {
        SagaId::Payment(id) => state.payments.get(&id).map(|payment| payment.status),
        SagaId::Order(_) => None,
    }
}

impl ShardCore {
    /// Adds what change data capture hears of an event just applied beyond what
    /// feeds hear: the payment's new status, the reservation held or closed.
    pub(super) fn change(&mut self, event: &Event, payment_before: Option<PaymentStatus>) {
        let state = &self.state;
        let notices = &mut self.batch.notices;
        let reservation = if let Event::Reserved { sku, id, at, .. } = event {
            Some((sku, id, 1, at))
        } else if let Event::ReservationClosed { sku, id, at, .. } = event {
            Some((sku, id, 2, at))
        } else {
            None
        };
        if let Some((sku, id, version, at)) = reservation {
            let key = ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            };
            if let Some(reservation) = state.reservations.get(&key) {
                notices.push(Notice::Reservation {
                    reservation: ReservationView::from(reservation),
                    version,
                    at: *at,
                });
            }
            return;
        }
        let Some(SagaId::Payment(id)) = event.saga() else {
            return;
        };
        let Some(payment) = state.payments.get(&id) else {
            return;
        };
        if payment.status == PaymentStatus::Pending || Some(payment.status) == payment_before {
            return;
        }
        // A payment reports at most two statuses: its first, and after
        // `authorized` its final one.
        let version = if payment_before == Some(PaymentStatus::Authorized) {
            2
        } else {
            1
        };
        notices.push(Notice::Payment {
            payment: PaymentView::current(payment),
            version,
            at: payment.updated_at,
        });
    }

    /// Adds what feeds hear of an event just applied.
    pub(super) fn notice(&mut self, event: &Event, order_version_before: usize) {
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
            // Nothing a feed shows changed, or (a local run or rejection of an
            // order, a step that was refused) it was heard as it happened.
            Event::AccountCreated { .. }
            | Event::OpRecorded { .. }
            | Event::PaymentCreated { .. }
            | Event::PaymentStepCompleted { .. }
            | Event::PaymentCaptureRequested { .. }
            | Event::PaymentReleaseRequested { .. }
            | Event::StepApplied { .. }
            | Event::PaymentStepAppliedLocally { .. }
            | Event::ItemCreated { .. }
            | Event::LineStepApplied { .. }
            | Event::RecordsPruned { .. }
            | Event::OrderRunLocally { .. }
            | Event::OrderRejectedLocally { .. }
            // An entity leaving memory or coming back changes nothing it shows.
            | Event::EntitiesArchived { .. }
            | Event::EntityRecalled { .. }
        | Event::StepFloorRaised { .. } => {}
        }
    }
}

/// What feeds hear of an order's status at `index` in its history.
pub(super) fn order_notice(order: &order::Order, index: usize) -> Notice {
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
pub(super) fn changed_notice(
    state: &State,
    changed: Changed<'_>,
    at: TimestampMs,
) -> Option<Notice> {
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
