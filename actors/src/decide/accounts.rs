//! Accounts: creating them, deposits and withdrawals, and an account owner's
//! answer to a saga step (debit, credit, hold, capture, release, validation).

use super::Plan;
use crate::command::{BalanceChangeView, Reply};
use crate::domain::{AccountId, Amount, Currency, OpId, TimestampMs};
use crate::event::Event;
use crate::model::{
    SagaId, StepEffect, StepKey, StepKind, StepOrigin, StepOutcome, StepTag, HOLD_OPEN_DEADLINE,
};
use crate::rejection::Rejection;
use crate::state::State;
use rust_decimal::Decimal;

/// An account that exists already answers as created when its terms are the
/// same, and is refused otherwise.
pub(super) fn plan_create(
    state: &State,
    id: &AccountId,
    currency: Currency,
    overdraft_limit: Decimal,
) -> Plan {
    match state.accounts.get(id) {
        Some(account)
            if account.currency == currency && account.overdraft_limit == overdraft_limit =>
        {
            Plan::Answer(Reply::Account {
                account: account.into(),
                created: false,
            })
        }
        Some(_) => Plan::Answer(Reply::rejected(Rejection::AccountExists)),
        None => Plan::Decide,
    }
}

pub(super) fn create(
    id: &AccountId,
    currency: Currency,
    overdraft_limit: Decimal,
    at: TimestampMs,
) -> Vec<Event> {
    vec![Event::AccountCreated {
        id: id.clone(),
        currency,
        overdraft_limit,
        at,
    }]
}

/// A deposit, or (`withdraw`) a withdrawal, which must find the money available.
pub(super) fn change_balance(
    state: &State,
    account: &AccountId,
    amount: Amount,
    currency: Option<Currency>,
    withdraw: bool,
    at: TimestampMs,
) -> Result<Vec<Event>, Rejection> {
    let found = state
        .accounts
        .get(account)
        .ok_or(Rejection::AccountNotFound)?;
    if currency.is_some_and(|c| c != found.currency) {
        return Err(Rejection::CurrencyMismatch);
    }
    amount
        .check_scale(found.currency)
        .map_err(|_| Rejection::InvalidAmount)?;
    let delta = if withdraw {
        if found.available() < amount.value() {
            return Err(Rejection::InsufficientFunds);
        }
        -amount.value()
    } else {
        amount.value()
    };
    found
        .balance
        .checked_add(delta)
        .ok_or(Rejection::LimitExceeded)?;
    Ok(vec![Event::BalanceChanged {
        account: account.clone(),
        delta,
        at,
    }])
}

pub(super) fn answer_created(state: &State, id: &AccountId) -> Reply {
    match state.accounts.get(id) {
        Some(account) => Reply::Account {
            account: account.into(),
            created: true,
        },
        None => Reply::rejected(Rejection::AccountNotFound),
    }
}

pub(super) fn answer_balance_change(
    state: &State,
    account: &AccountId,
    id: &OpId,
    amount: Amount,
) -> Reply {
    match state.accounts.get(account) {
        Some(found) => Reply::BalanceChange {
            change: BalanceChangeView {
                id: id.clone(),
                account: account.clone(),
                amount: amount.value(),
                balance: found.balance,
                currency: found.currency,
            },
            replayed: false,
        },
        None => Reply::rejected(Rejection::AccountNotFound),
    }
}

/// An account shard's handling of a saga step: the events (a record of the step
/// and its effect) and the outcome to send back. A step seen before answers what
/// it answered then, so steps can be resent and duplicated safely (a late
/// duplicate whose record went with its sender's floor never gets here: see
/// `State::step_is_stale`).
#[expect(
    clippy::too_many_arguments,
    reason = "the step's fields, its origin and the shard's clock and retention"
)]
pub fn decide_step(
    state: &State,
    saga: &SagaId,
    account_id: &AccountId,
    currency: Currency,
    kind: StepKind,
    now: TimestampMs,
    retention_ms: u64,
    origin: Option<StepOrigin>,
) -> (Vec<Event>, StepOutcome) {
    let key = StepKey {
        saga: saga.clone(),
        tag: kind.tag(),
    };
    if let Some(record) = state.steps.get(&key) {
        return (vec![], record.outcome);
    }
    let result = step_effect(state, saga, account_id, currency, kind);
    // Validation changes nothing and is not recorded: accounts never disappear or
    // change currency, so asking again gives the same answer. (A refused one is
    // recorded like any other refusal.)
    if matches!(kind, StepKind::Validate) && result.is_ok() {
        return (vec![], StepOutcome::Done);
    }
    let amount = match kind {
        StepKind::Hold { amount } => amount,
        _ => Decimal::ZERO,
    };
    let (mut events, outcome) = record(key, account_id, result, now, retention_ms, origin);
    if let Some(Event::StepApplied {
        amount: held,
        expires_at,
        outcome: StepOutcome::Done,
        ..
    }) = events.first_mut()
    {
        *held = amount;
        // An active hold's record is what its release or capture gives back, and a
        // hold lives as long as the payment's hold timeout (days), longer than the
        // retention: pruned early, the release finds nothing and the money stays
        // held for good. So the record is kept until the hold closes; `apply`
        // then files it to age out with the closing step's record.
        if kind.tag() == StepTag::Hold {
            *expires_at = HOLD_OPEN_DEADLINE;
        }
    }
    (events, outcome)
}

/// What a saga step would do to `account_id` now: its effect, or why it is
/// refused. Pure; records nothing.
pub fn step_effect(
    state: &State,
    saga: &SagaId,
    account_id: &AccountId,
    currency: Currency,
    kind: StepKind,
) -> Result<StepEffect, Rejection> {
    let account = match state.accounts.get(account_id) {
        Some(account) if account.currency == currency => account,
        Some(_) => return Err(Rejection::CurrencyMismatch),
        None => return Err(Rejection::AccountNotFound),
    };
    let effect = |balance_delta: Decimal, held_delta: Decimal| {
        Ok(StepEffect {
            balance_delta,
            held_delta,
        })
    };
    let active_hold = || {
        let hold = state.steps.get(&StepKey {
            saga: saga.clone(),
            tag: StepTag::Hold,
        })?;
        let closed = [StepTag::Release, StepTag::Capture].iter().any(|tag| {
            state.steps.contains_key(&StepKey {
                saga: saga.clone(),
                tag: *tag,
            })
        });
        (hold.outcome == StepOutcome::Done && !closed).then_some(hold.amount)
    };
    match kind {
        StepKind::Validate => effect(Decimal::ZERO, Decimal::ZERO),
        StepKind::Debit { amount } | StepKind::Hold { amount } if account.available() < amount => {
            Err(Rejection::InsufficientFunds)
        }
        StepKind::Debit { amount } => effect(-amount, Decimal::ZERO),
        StepKind::Hold { amount } => effect(Decimal::ZERO, amount),
        StepKind::Credit { amount } | StepKind::Refund { amount } => {
            match account.balance.checked_add(amount) {
                Some(_) => effect(amount, Decimal::ZERO),
                None => Err(Rejection::LimitExceeded),
            }
        }
        StepKind::Release => match active_hold() {
            Some(held) => effect(Decimal::ZERO, -held),
            // Nothing held (never was, or already released): releasing is a no-op.
            None => effect(Decimal::ZERO, Decimal::ZERO),
        },
        StepKind::Capture { amount } => match active_hold() {
            Some(held) => effect(-amount, -held),
            None => Err(Rejection::PaymentNotAuthorized),
        },
    }
}

fn record(
    key: StepKey,
    account: &AccountId,
    result: Result<StepEffect, Rejection>,
    now: TimestampMs,
    retention_ms: u64,
    origin: Option<StepOrigin>,
) -> (Vec<Event>, StepOutcome) {
    let (outcome, effect) = match result {
        Ok(effect) => (StepOutcome::Done, effect),
        Err(rejection) => (StepOutcome::Rejected(rejection), StepEffect::NONE),
    };
    let event = Event::StepApplied {
        key,
        account: account.clone(),
        outcome,
        effect,
        amount: Decimal::ZERO,
        expires_at: now.saturating_add(retention_ms),
        at: now,
        origin,
    };
    (vec![event], outcome)
}
