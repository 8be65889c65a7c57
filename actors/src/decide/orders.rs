//! Orders: creating and cancelling them, and waking the clients that wait on an
//! order's saga.

use super::{Plan, WaitFor};
use crate::command::{OrderView, Reply};
use crate::domain::{OrderId, TimestampMs};
use crate::event::Event;
use crate::order::{OrderEnding, OrderStatus, OrderTerms};
use crate::rejection::Rejection;
use crate::state::State;

/// An order that exists already: the same terms replay its final state (or wait
/// for it), other terms are a conflict.
pub(super) fn plan_create(state: &State, id: &OrderId, terms: &OrderTerms) -> Plan {
    match state.orders.get(id) {
        Some(order) if order.terms != *terms => {
            Plan::Answer(Reply::rejected(Rejection::IdempotencyConflict))
        }
        Some(order) if order.is_final() => Plan::Answer(
            Reply::Order {
                order: OrderView::from(&**order),
                replayed: false,
            }
            .into_replayed(),
        ),
        Some(_) => Plan::Wait(WaitFor::OrderFinal, true),
        None => Plan::Decide,
    }
}

/// A new order, which expires `order_timeout_ms` from now unless authorized.
pub(super) fn create(
    id: &OrderId,
    terms: &OrderTerms,
    now: TimestampMs,
    order_timeout_ms: u64,
) -> Vec<Event> {
    vec![Event::OrderCreated {
        id: id.clone(),
        terms: terms.clone(),
        deadline: now.saturating_add(order_timeout_ms),
        at: now,
    }]
}

/// Cancels an order that can still end: it gives back what it took.
pub(super) fn cancel(
    state: &State,
    id: &OrderId,
    at: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let order = state.orders.get(id).ok_or(Rejection::OrderNotFound)?;
    // A second cancel while the first is still releasing waits for the same
    // end. It is decided (with no new event) rather than attached to the
    // first, so that its own idempotency key is recorded: a retry must
    // answer "cancelled" too, not find a final order and refuse.
    if !order.is_final() && order.ending_requested == Some(OrderEnding::Cancelled) {
        return Ok(vec![]);
    }
    if !order.can_end() {
        return Err(Rejection::OrderAlreadyFinal);
    }
    Ok(vec![Event::OrderEndRequested {
        id: id.clone(),
        ending: OrderEnding::Cancelled,
        at,
    }])
}

/// Whether a client waiting on order `id` can be answered, and with what.
pub(super) fn wake(state: &State, id: &OrderId, wait: WaitFor) -> Option<Reply> {
    let order = state.orders.get(id)?;
    if !order.is_final() {
        return None;
    }
    if wait == WaitFor::OrderCancel && order.status != OrderStatus::Cancelled {
        return Some(Reply::rejected(Rejection::OrderAlreadyFinal));
    }
    Some(Reply::Order {
        order: OrderView::from(&**order),
        replayed: false,
    })
}
