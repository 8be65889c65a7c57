//! `decide`: the pure business rules. A function of (state, command, now) that
//! returns the events to apply or the reason to refuse. No I/O, no clock, no
//! randomness; replays (idempotent answers) are found before it runs.
//!
//! The functions here are dispatchers: each command is planned, decided and
//! answered by the child module of its concept (the same concepts as `state`'s
//! and `shard`'s children):
//!
//! * `accounts`: accounts, deposits and withdrawals, and an account owner's
//!   answer to a saga step.
//! * `payments`: creating, capturing and voiding payments; waking their clients.
//! * `stock`: items, restocks, reservations, and an item owner's answer to an
//!   order line's step.
//! * `orders`: creating and cancelling orders; waking their clients.
//! * `idempotency`: operation keys, body fingerprints, replays of recorded
//!   outcomes.
//! * `local`: whether a new payment or order can run on its coordinator's shard
//!   as one event, and with what outcomes.

mod accounts;
mod idempotency;
mod local;
mod orders;
mod payments;
mod stock;

pub use accounts::{decide_step, step_effect};
pub use idempotency::{fingerprint, op_key, op_outcome_after};
pub use local::{local_refusals, local_rejection, local_run, local_run_outcomes, LocalRun};
pub use stock::{decide_line_step, item_price, reserve_refusal};

use crate::archive::ArchiveKey;
use crate::command::{Command, Reply};
use crate::domain::TimestampMs;
use crate::event::Event;
use crate::model::ReservationKey;
use crate::model::SagaId;
use crate::rejection::Rejection;
use crate::state::State;

/// How long idempotency records are kept (docs/API.md: at least 24 hours).
pub const RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

/// What the client waits for when the answer comes from a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The payment's first reportable state (settled, authorized or rejected).
    Outcome,
    Capture,
    Void,
    /// The order's final state (or, past the client's `wait_ms`, its state then).
    OrderFinal,
    /// The end of an order that this client cancelled.
    OrderCancel,
}

/// What happens to a command, before any event.
#[derive(Debug)]
pub enum Plan {
    /// Answer now from recorded state (a replay or a natural no-op).
    Answer(Reply),
    /// Attach to a saga already running for the same request.
    Wait(WaitFor, bool),
    /// Run `decide`.
    Decide,
}

/// Finds the answer a command gets without deciding anything new: a replay of an
/// earlier outcome, an idempotency conflict, or "the same resource already exists".
pub fn plan(state: &State, command: &Command) -> Plan {
    if let Some(key) = op_key(command) {
        if let Some(record) = state.ops.get(&key) {
            if record.fingerprint != fingerprint(command) {
                return Plan::Answer(Reply::rejected(Rejection::IdempotencyConflict));
            }
            return idempotency::replay(state, command, record);
        }
    }
    match command {
        Command::CreateAccount {
            id,
            currency,
            overdraft_limit,
        } => accounts::plan_create(state, id, *currency, *overdraft_limit),
        Command::CreatePayment {
            id,
            from,
            to,
            amount,
            currency,
            capture,
            hold_timeout_ms,
        } => {
            let terms = payments::terms(from, to, *amount, *currency, *capture, *hold_timeout_ms);
            payments::plan_create(state, id, &terms)
        }
        Command::CreateOrder { id, terms, .. } => orders::plan_create(state, id, terms),
        Command::CreateItem {
            sku,
            price,
            currency,
            stock,
        } => stock::plan_create_item(state, sku, *price, *currency, *stock),
        Command::Reserve {
            sku,
            id,
            quantity,
            ttl_ms,
        } => stock::plan_reserve(state, sku, id, *quantity, *ttl_ms),
        // Operations on something that exists are replayed by their operation
        // record, above, or decided anew.
        Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CapturePayment { .. }
        | Command::VoidPayment { .. }
        | Command::Restock { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::CancelOrder { .. } => Plan::Decide,
    }
}

/// The finished entity a command names, which must be in memory (or known to be
/// nowhere) before the command is planned: a retry of a creation, or an
/// operation on the entity.
pub fn named_entity(command: &Command) -> Option<ArchiveKey> {
    match command {
        Command::CreatePayment { id, .. }
        | Command::CapturePayment { id, .. }
        | Command::VoidPayment { id, .. } => Some(ArchiveKey::Payment(id.clone())),
        Command::CreateOrder { id, .. } | Command::CancelOrder { id, .. } => {
            Some(ArchiveKey::Order(id.clone()))
        }
        Command::Reserve { sku, id, .. }
        | Command::CommitReservation { sku, id, .. }
        | Command::ReleaseReservation { sku, id, .. } => {
            Some(ArchiveKey::Reservation(ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            }))
        }
        // Accounts and items never leave memory.
        Command::CreateAccount { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CreateItem { .. }
        | Command::Restock { .. } => None,
    }
}

/// Whether a command that is decided (not a replay) starts a payment, order or
/// reservation that stays open in memory until it ends.
pub fn starts_open_entity(command: &Command) -> bool {
    match command {
        Command::CreatePayment { .. } | Command::CreateOrder { .. } | Command::Reserve { .. } => {
            true
        }
        Command::CreateAccount { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CapturePayment { .. }
        | Command::VoidPayment { .. }
        | Command::CreateItem { .. }
        | Command::Restock { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. }
        | Command::CancelOrder { .. } => false,
    }
}

/// The business rules: the events a command produces, or why it is refused.
pub fn decide(
    state: &State,
    command: &Command,
    now: TimestampMs,
    order_timeout_ms: u64,
) -> Result<Vec<Event>, Rejection> {
    match command {
        Command::CreateAccount {
            id,
            currency,
            overdraft_limit,
        } => Ok(accounts::create(id, *currency, *overdraft_limit, now)),
        Command::Deposit {
            account,
            amount,
            currency,
            ..
        } => accounts::change_balance(state, account, *amount, *currency, false, now),
        Command::Withdraw {
            account,
            amount,
            currency,
            ..
        } => accounts::change_balance(state, account, *amount, *currency, true, now),
        Command::CreatePayment {
            id,
            from,
            to,
            amount,
            currency,
            capture,
            hold_timeout_ms,
        } => {
            let terms = payments::terms(from, to, *amount, *currency, *capture, *hold_timeout_ms);
            Ok(payments::create(id, terms, now))
        }
        Command::CapturePayment { id, amount, .. } => payments::capture(state, id, *amount, now),
        Command::VoidPayment { id, .. } => payments::void(state, id, now),
        Command::CreateItem {
            sku,
            price,
            currency,
            stock,
        } => Ok(stock::create_item(sku, *price, *currency, *stock, now)),
        Command::Restock { sku, quantity, .. } => stock::restock(state, sku, *quantity, now),
        Command::Reserve {
            sku,
            id,
            quantity,
            ttl_ms,
        } => stock::reserve(state, sku, id, *quantity, *ttl_ms, now),
        Command::CommitReservation { sku, id, .. } => {
            stock::close_reservation(state, sku, id, true, now)
        }
        Command::ReleaseReservation { sku, id, .. } => {
            stock::close_reservation(state, sku, id, false, now)
        }
        Command::CreateOrder { id, terms, .. } => {
            Ok(orders::create(id, terms, now, order_timeout_ms))
        }
        Command::CancelOrder { id, .. } => orders::cancel(state, id, now),
    }
}

/// The answer to a command whose events were just applied, or what to wait for.
pub fn answer(state: &State, command: &Command) -> Result<Reply, WaitFor> {
    match command {
        Command::CreateAccount { id, .. } => Ok(accounts::answer_created(state, id)),
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
        } => Ok(accounts::answer_balance_change(state, account, id, *amount)),
        Command::CreatePayment { .. } => Err(WaitFor::Outcome),
        Command::CapturePayment { .. } => Err(WaitFor::Capture),
        Command::VoidPayment { .. } => Err(WaitFor::Void),
        Command::CreateOrder { .. } => Err(WaitFor::OrderFinal),
        Command::CancelOrder { .. } => Err(WaitFor::OrderCancel),
        Command::CreateItem { sku, .. } => Ok(stock::answer_item(state, sku, true)),
        Command::Restock { sku, .. } => Ok(stock::answer_item(state, sku, false)),
        Command::Reserve { sku, id, .. }
        | Command::CommitReservation { sku, id, .. }
        | Command::ReleaseReservation { sku, id, .. } => {
            Ok(stock::answer_reservation(state, sku, id))
        }
    }
}

/// Whether a waiting client can be answered, and with what.
pub fn wake(state: &State, saga: &SagaId, wait: WaitFor) -> Option<Reply> {
    match saga {
        SagaId::Payment(id) => payments::wake(state, id, wait),
        SagaId::Order(id) => orders::wake(state, id, wait),
    }
}
