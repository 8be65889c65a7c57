//! Stock: creating items, restocks, reservations and their commit or release,
//! and an item owner's answer to an order line's step.

use super::Plan;
use crate::command::{Reply, ReservationView};
use crate::domain::{Amount, Currency, OrderId, Quantity, ReservationId, Sku, TimestampMs};
use crate::event::Event;
use crate::model::{ReservationKey, ReservationStatus, SagaId, StepKey, StepOrigin, StepOutcome};
use crate::order::LineStepKind;
use crate::rejection::Rejection;
use crate::state::State;
use rust_decimal::Decimal;

/// An item that exists already answers as created when its terms are the same,
/// and is refused otherwise.
pub(super) fn plan_create_item(
    state: &State,
    sku: &Sku,
    price: Amount,
    currency: Currency,
    stock: u64,
) -> Plan {
    match state.items.get(sku) {
        Some(item)
            if item.price == price.value()
                && item.currency == currency
                && item.initial_stock == stock =>
        {
            Plan::Answer(Reply::Item {
                item: item.into(),
                created: false,
                replayed: true,
            })
        }
        Some(_) => Plan::Answer(Reply::rejected(Rejection::ItemExists)),
        None => Plan::Decide,
    }
}

/// A reservation that exists already replays its first answer when asked for the
/// same quantity and time to live, and is a conflict otherwise.
pub(super) fn plan_reserve(
    state: &State,
    sku: &Sku,
    id: &ReservationId,
    quantity: Quantity,
    ttl_ms: u64,
) -> Plan {
    let key = ReservationKey {
        sku: sku.clone(),
        id: id.clone(),
    };
    match state.reservations.get(&key) {
        Some(reservation)
            if reservation.quantity == quantity.get() && reservation.ttl_ms == ttl_ms =>
        {
            // The first answer was "held until expires_at".
            let mut first = ReservationView::from(reservation);
            first.status = ReservationStatus::Held;
            Plan::Answer(Reply::Reservation {
                reservation: first,
                replayed: true,
            })
        }
        Some(_) => Plan::Answer(Reply::rejected(Rejection::IdempotencyConflict)),
        None => Plan::Decide,
    }
}

pub(super) fn create_item(
    sku: &Sku,
    price: Amount,
    currency: Currency,
    stock: u64,
    at: TimestampMs,
) -> Vec<Event> {
    vec![Event::ItemCreated {
        sku: sku.clone(),
        price: price.value(),
        currency,
        stock,
        at,
    }]
}

pub(super) fn restock(
    state: &State,
    sku: &Sku,
    quantity: Quantity,
    at: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let item = state.items.get(sku).ok_or(Rejection::ItemNotFound)?;
    item.on_hand
        .checked_add(u64::from(quantity.get()))
        .ok_or(Rejection::LimitExceeded)?;
    Ok(vec![Event::Restocked {
        sku: sku.clone(),
        quantity: u64::from(quantity.get()),
        at,
    }])
}

/// Holds `quantity` units for `ttl_ms`, if that many are available.
pub(super) fn reserve(
    state: &State,
    sku: &Sku,
    id: &ReservationId,
    quantity: Quantity,
    ttl_ms: u64,
    now: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let item = state.items.get(sku).ok_or(Rejection::ItemNotFound)?;
    if item.available() < u64::from(quantity.get()) {
        return Err(Rejection::OutOfStock);
    }
    Ok(vec![Event::Reserved {
        sku: sku.clone(),
        id: id.clone(),
        quantity: quantity.get(),
        ttl_ms,
        expires_at: now.saturating_add(ttl_ms),
        at: now,
    }])
}

/// Commits (`commit`) or releases a held reservation.
pub(super) fn close_reservation(
    state: &State,
    sku: &Sku,
    id: &ReservationId,
    commit: bool,
    now: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let at = now;
    let key = ReservationKey {
        sku: sku.clone(),
        id: id.clone(),
    };
    let reservation = state
        .reservations
        .get(&key)
        .ok_or(Rejection::ReservationNotFound)?;
    let expired_now =
        reservation.status == ReservationStatus::Held && reservation.expires_at <= now;
    match (commit, reservation.status) {
        (true, ReservationStatus::Held) if expired_now => Err(Rejection::ReservationExpired),
        (_, ReservationStatus::Held) => Ok(vec![Event::ReservationClosed {
            sku: sku.clone(),
            id: id.clone(),
            status: if commit {
                ReservationStatus::Committed
            } else {
                ReservationStatus::Released
            },
            at,
        }]),
        // Repeating a commit or a release is a no-op that answers the same.
        (true, ReservationStatus::Committed) => Ok(vec![]),
        (false, ReservationStatus::Released | ReservationStatus::Expired) => Ok(vec![]),
        (true, ReservationStatus::Expired) => Err(Rejection::ReservationExpired),
        (true, ReservationStatus::Released) => Err(Rejection::ReservationReleased),
        (false, ReservationStatus::Committed) => Err(Rejection::ReservationCommitted),
    }
}

pub(super) fn answer_item(state: &State, sku: &Sku, created: bool) -> Reply {
    match state.items.get(sku) {
        Some(item) => Reply::Item {
            item: item.into(),
            created,
            replayed: false,
        },
        None => Reply::rejected(Rejection::ItemNotFound),
    }
}

pub(super) fn answer_reservation(state: &State, sku: &Sku, id: &ReservationId) -> Reply {
    let key = ReservationKey {
        sku: sku.clone(),
        id: id.clone(),
    };
    match state.reservations.get(&key) {
        Some(reservation) => Reply::Reservation {
            reservation: reservation.into(),
            replayed: false,
        },
        None => Reply::rejected(Rejection::ReservationNotFound),
    }
}

/// An item shard's handling of an order line's step: the events (the step's record
/// and its effect on the stock) and the answer, with the item's price when the
/// item exists. A step seen before answers what it answered then.
#[expect(
    clippy::too_many_arguments,
    reason = "the step's fields, its origin and the shard's clock and retention"
)]
pub fn decide_line_step(
    state: &State,
    order: &OrderId,
    line: u16,
    sku: &Sku,
    kind: LineStepKind,
    now: TimestampMs,
    retention_ms: u64,
    origin: Option<StepOrigin>,
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
        origin,
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

/// The price an item's shard reports with its answer.
pub fn item_price(state: &State, sku: &Sku) -> Option<(Decimal, Currency)> {
    state.items.get(sku).map(|item| (item.price, item.currency))
}
