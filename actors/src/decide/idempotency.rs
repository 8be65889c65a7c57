//! Idempotency: the key under which an operation's outcome is recorded, the
//! fingerprint of its body, and the replay of a recorded outcome.

use super::{Plan, WaitFor};
use crate::command::{BalanceChangeView, Command, ItemView, OrderView, PaymentView, Reply};
use crate::domain::{Amount, OpId};
use crate::model::{Ending, OpKey, OpOutcome, OpRecord, Stage};
use crate::rejection::Rejection;
use crate::state::State;
use xxhash_rust::xxh3::Xxh3Default;

/// The idempotency key of a non-creating command, when it has one.
pub fn op_key(command: &Command) -> Option<OpKey> {
    let (kind, target, id): (&str, &str, &OpId) = match command {
        Command::Deposit {
            account,
            id,
            replayable: true,
            ..
        } => ("deposit", account.as_str(), id),
        Command::Withdraw {
            account,
            id,
            replayable: true,
            ..
        } => ("withdrawal", account.as_str(), id),
        Command::CapturePayment {
            id, op: Some(op), ..
        } => ("capture", id.as_str(), op),
        Command::VoidPayment { id, op: Some(op) } => ("void", id.as_str(), op),
        Command::CancelOrder { id, op: Some(op) } => ("cancel", id.as_str(), op),
        Command::Restock {
            sku, op: Some(op), ..
        } => ("restock", sku.as_str(), op),
        Command::CommitReservation {
            sku,
            id,
            op: Some(op),
        } => return Some(OpKey(format!("commit/{sku}/{id}/{op}"))),
        Command::ReleaseReservation {
            sku,
            id,
            op: Some(op),
        } => return Some(OpKey(format!("release/{sku}/{id}/{op}"))),
        Command::Reserve { sku, id, .. } => return Some(OpKey(format!("reserve/{sku}/{id}"))),
        // Creations are their own records; an operation without a client-chosen
        // id is not replayable.
        Command::CreateAccount { .. }
        | Command::CreatePayment { .. }
        | Command::CreateItem { .. }
        | Command::CreateOrder { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CapturePayment { .. }
        | Command::VoidPayment { .. }
        | Command::CancelOrder { .. }
        | Command::Restock { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. } => return None,
    };
    Some(OpKey::new(kind, target, id))
}

/// A digest of the request body (everything but the ids that route it): a retry
/// with the same key must carry the same fingerprint.
pub fn fingerprint(command: &Command) -> u64 {
    let mut hasher = Xxh3Default::new();
    let mut put = |part: &str| {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    };
    let amount_text = |amount: &Option<Amount>| amount.map(|a| a.value().to_string());
    match command {
        Command::Deposit {
            amount, currency, ..
        }
        | Command::Withdraw {
            amount, currency, ..
        } => {
            put(&amount.value().to_string());
            put(currency.map(|c| c.code()).unwrap_or("-"));
        }
        Command::CapturePayment { amount, .. } => {
            put(amount_text(amount).as_deref().unwrap_or("all"));
        }
        Command::Restock { quantity, .. } => put(&quantity.get().to_string()),
        Command::Reserve {
            quantity, ttl_ms, ..
        } => {
            put(&quantity.get().to_string());
            put(&ttl_ms.to_string());
        }
        Command::CreateAccount { .. }
        | Command::CreatePayment { .. }
        | Command::VoidPayment { .. }
        | Command::CreateItem { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::CreateOrder { .. }
        | Command::CancelOrder { .. } => put(""),
    }
    hasher.digest()
}

/// Answers a command whose operation record exists, as it was answered then.
pub(super) fn replay(state: &State, command: &Command, record: &OpRecord) -> Plan {
    let reply = match &record.outcome {
        OpOutcome::Rejected(rejection) => Reply::rejected(*rejection),
        OpOutcome::BalanceChanged {
            id,
            account,
            amount,
            balance,
        } => {
            // The account exists: the operation succeeded on it.
            let currency = state.accounts.get(account).map(|a| a.currency);
            match currency {
                Some(currency) => Reply::BalanceChange {
                    change: BalanceChangeView {
                        id: id.clone(),
                        account: account.clone(),
                        amount: *amount,
                        balance: *balance,
                        currency,
                    },
                    replayed: false,
                },
                None => Reply::rejected(Rejection::AccountNotFound),
            }
        }
        OpOutcome::Restocked {
            on_hand,
            reserved,
            version,
        } => match command {
            Command::Restock { sku, .. } => match state.items.get(sku) {
                Some(item) => {
                    let mut view = ItemView::from(item);
                    view.on_hand = *on_hand;
                    view.reserved = *reserved;
                    view.available = on_hand - reserved;
                    view.version = *version;
                    Reply::Item {
                        item: view,
                        created: false,
                        replayed: false,
                    }
                }
                None => Reply::rejected(Rejection::ItemNotFound),
            },
            Command::CreateAccount { .. }
            | Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::CreatePayment { .. }
            | Command::CapturePayment { .. }
            | Command::VoidPayment { .. }
            | Command::CreateItem { .. }
            | Command::Reserve { .. }
            | Command::CommitReservation { .. }
            | Command::ReleaseReservation { .. }
            | Command::CreateOrder { .. }
            | Command::CancelOrder { .. } => Reply::rejected(Rejection::IdempotencyConflict),
        },
        OpOutcome::Finalized => return replay_finalized(state, command),
    };
    Plan::Answer(reply.into_replayed())
}

/// Replays a capture, void, cancel, commit or release that finalized its target:
/// the target as it is now, or the end it is still on its way to.
fn replay_finalized(state: &State, command: &Command) -> Plan {
    let reply = match command {
        Command::CapturePayment { id, .. } | Command::VoidPayment { id, .. } => {
            let Some(payment) = state.payments.get(id) else {
                return Plan::Answer(Reply::rejected(Rejection::PaymentNotFound));
            };
            let capture = matches!(command, Command::CapturePayment { .. });
            match payment.stage {
                Stage::Capture { .. } | Stage::CaptureCredit { .. } if capture => {
                    return Plan::Wait(WaitFor::Capture, true)
                }
                Stage::Release(Ending::Voided) if !capture => {
                    return Plan::Wait(WaitFor::Void, true)
                }
                _ => Reply::Payment {
                    payment: PaymentView::current(payment),
                    replayed: false,
                },
            }
        }
        Command::CancelOrder { id, .. } => match state.orders.get(id) {
            Some(order) if order.is_final() => Reply::Order {
                order: OrderView::from(&**order),
                replayed: false,
            },
            Some(_) => return Plan::Wait(WaitFor::OrderCancel, true),
            None => Reply::rejected(Rejection::OrderNotFound),
        },
        Command::CommitReservation { sku, id, .. }
        | Command::ReleaseReservation { sku, id, .. } => {
            super::stock::answer_reservation(state, sku, id)
        }
        Command::CreateAccount { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CreatePayment { .. }
        | Command::CreateItem { .. }
        | Command::Restock { .. }
        | Command::Reserve { .. }
        | Command::CreateOrder { .. } => Reply::rejected(Rejection::IdempotencyConflict),
    };
    Plan::Answer(reply.into_replayed())
}

/// The idempotency record written with a successful command's events, if any.
pub fn op_outcome_after(state: &State, command: &Command) -> Option<OpOutcome> {
    match command {
        Command::Deposit {
            account,
            id,
            amount,
            ..
        }
        | Command::Withdraw {
            account,
            id,
            amount,
            ..
        } => {
            let balance = state.accounts.get(account)?.balance;
            Some(OpOutcome::BalanceChanged {
                id: id.clone(),
                account: account.clone(),
                amount: amount.value(),
                balance,
            })
        }
        Command::Restock { sku, .. } => {
            let item = state.items.get(sku)?;
            Some(OpOutcome::Restocked {
                on_hand: item.on_hand,
                reserved: item.reserved,
                version: item.version,
            })
        }
        Command::CapturePayment { .. }
        | Command::VoidPayment { .. }
        | Command::CancelOrder { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. } => Some(OpOutcome::Finalized),
        // Creations, and a successful reservation, are their own records.
        Command::CreateAccount { .. }
        | Command::CreatePayment { .. }
        | Command::CreateItem { .. }
        | Command::Reserve { .. }
        | Command::CreateOrder { .. } => None,
    }
}
