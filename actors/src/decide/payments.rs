//! Payments: creating one (one-phase, or two-phase with a hold), capturing and
//! voiding a hold, and waking the clients that wait on a payment's saga.

use super::{Plan, WaitFor};
use crate::command::{PaymentView, Reply};
use crate::domain::{AccountId, Amount, Currency, PaymentId, TimestampMs};
use crate::event::Event;
use crate::model::{Ending, PaymentStatus, PaymentTerms, Stage};
use crate::rejection::Rejection;
use crate::state::State;

/// The terms a `CreatePayment` asks for.
pub(super) fn terms(
    from: &AccountId,
    to: &AccountId,
    amount: Amount,
    currency: Currency,
    capture: bool,
    hold_timeout_ms: u64,
) -> PaymentTerms {
    PaymentTerms {
        from: from.clone(),
        to: to.clone(),
        amount: amount.value(),
        currency,
        capture,
        hold_timeout_ms,
    }
}

/// A payment that exists already: the same terms replay its first outcome (or
/// wait for it), other terms are a conflict.
pub(super) fn plan_create(state: &State, id: &PaymentId, terms: &PaymentTerms) -> Plan {
    match state.payments.get(id) {
        Some(payment) => {
            if payment.terms != *terms {
                Plan::Answer(Reply::rejected(Rejection::IdempotencyConflict))
            } else if payment.first.is_some() {
                Plan::Answer(
                    Reply::Payment {
                        payment: PaymentView::first(payment),
                        replayed: false,
                    }
                    .into_replayed(),
                )
            } else {
                Plan::Wait(WaitFor::Outcome, true)
            }
        }
        None => Plan::Decide,
    }
}

/// A new payment; one to its own payer is recorded as rejected.
pub(super) fn create(id: &PaymentId, terms: PaymentTerms, at: TimestampMs) -> Vec<Event> {
    let rejected = (terms.from == terms.to).then_some(Rejection::SameAccount);
    vec![Event::PaymentCreated {
        id: id.clone(),
        terms,
        rejected,
        at,
    }]
}

/// Captures an authorized hold, whole (`amount` none) or in part.
pub(super) fn capture(
    state: &State,
    id: &PaymentId,
    amount: Option<Amount>,
    now: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let at = now;
    let payment = state.payments.get(id).ok_or(Rejection::PaymentNotFound)?;
    let authorized = payment.stage == Stage::Authorized
        && payment
            .hold_expires_at
            .is_some_and(|deadline| now < deadline);
    if !authorized {
        return Err(Rejection::PaymentNotAuthorized);
    }
    let amount = match amount {
        Some(amount) => {
            amount
                .check_scale(payment.terms.currency)
                .map_err(|_| Rejection::InvalidAmount)?;
            if amount.value() > payment.terms.amount {
                return Err(Rejection::AmountExceedsAuthorization);
            }
            amount.value()
        }
        None => payment.terms.amount,
    };
    Ok(vec![Event::PaymentCaptureRequested {
        id: id.clone(),
        amount,
        at,
    }])
}

/// Voids an authorized hold: it is released.
pub(super) fn void(
    state: &State,
    id: &PaymentId,
    at: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let payment = state.payments.get(id).ok_or(Rejection::PaymentNotFound)?;
    if payment.stage != Stage::Authorized {
        return Err(Rejection::PaymentNotAuthorized);
    }
    Ok(vec![Event::PaymentReleaseRequested {
        id: id.clone(),
        ending: Ending::Voided,
        at,
    }])
}

/// Whether a client waiting on payment `id` can be answered, and with what.
pub(super) fn wake(state: &State, id: &PaymentId, wait: WaitFor) -> Option<Reply> {
    let payment = state.payments.get(id)?;
    match wait {
        WaitFor::Outcome => payment.first.map(|_| Reply::Payment {
            payment: PaymentView::first(payment),
            replayed: false,
        }),
        WaitFor::Capture => match payment.stage {
            Stage::Capture { .. } | Stage::CaptureCredit { .. } => None,
            _ if payment.status == PaymentStatus::Captured => Some(Reply::Payment {
                payment: PaymentView::current(payment),
                replayed: false,
            }),
            _ => Some(Reply::rejected(Rejection::PaymentNotAuthorized)),
        },
        WaitFor::Void => match payment.stage {
            Stage::Release(Ending::Voided) => None,
            _ if payment.status == PaymentStatus::Voided => Some(Reply::Payment {
                payment: PaymentView::current(payment),
                replayed: false,
            }),
            _ => Some(Reply::rejected(Rejection::PaymentNotAuthorized)),
        },
        WaitFor::OrderFinal | WaitFor::OrderCancel => None,
    }
}
