//! `decide`: the pure business rules. A function of (state, command, now) that
//! returns the events to apply or the reason to refuse. No I/O, no clock, no
//! randomness; replays (idempotent answers) are found before it runs.

use crate::command::{
    BalanceChangeView, Command, ItemView, OrderView, PaymentView, Reply, ReservationView,
};
use crate::domain::{Amount, OpId, TimestampMs};
use crate::event::Event;
use crate::model::{
    Ending, OpKey, OpOutcome, OpRecord, PaymentStatus, PaymentTerms, ReservationKey,
    ReservationStatus, SagaId, Stage, StepEffect, StepKey, StepKind, StepOutcome, StepTag,
};
use crate::order::{OrderEnding, OrderStatus};
use crate::rejection::Rejection;
use crate::state::State;
use rust_decimal::Decimal;
use xxhash_rust::xxh3::Xxh3Default;

/// How long idempotency records are kept (API.md: at least 24 hours).
pub const RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

/// The retention deadline of an active hold's step record: never, until the hold
/// is released or captured (see `decide_step`).
pub const HOLD_OPEN_DEADLINE: TimestampMs = TimestampMs::MAX;

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
        _ => return None,
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
        _ => put(""),
    }
    hasher.digest()
}

/// Finds the answer a command gets without deciding anything new: a replay of an
/// earlier outcome, an idempotency conflict, or "the same resource already exists".
pub fn plan(state: &State, command: &Command) -> Plan {
    if let Some(key) = op_key(command) {
        if let Some(record) = state.ops.get(&key) {
            if record.fingerprint != fingerprint(command) {
                return Plan::Answer(Reply::rejected(Rejection::IdempotencyConflict));
            }
            return replay_op(state, command, record);
        }
    }
    match command {
        Command::CreateAccount {
            id,
            currency,
            overdraft_limit,
        } => match state.accounts.get(id) {
            Some(account)
                if account.currency == *currency && account.overdraft_limit == *overdraft_limit =>
            {
                Plan::Answer(Reply::Account {
                    account: account.into(),
                    created: false,
                })
            }
            Some(_) => Plan::Answer(Reply::rejected(Rejection::AccountExists)),
            None => Plan::Decide,
        },
        Command::CreatePayment {
            id,
            from,
            to,
            amount,
            currency,
            capture,
            hold_timeout_ms,
        } => match state.payments.get(id) {
            Some(payment) => {
                let terms = PaymentTerms {
                    from: from.clone(),
                    to: to.clone(),
                    amount: amount.value(),
                    currency: *currency,
                    capture: *capture,
                    hold_timeout_ms: *hold_timeout_ms,
                };
                if payment.terms != terms {
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
        },
        Command::CreateOrder { id, terms, .. } => match state.orders.get(id) {
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
        },
        Command::CreateItem {
            sku,
            price,
            currency,
            stock,
        } => match state.items.get(sku) {
            Some(item)
                if item.price == price.value()
                    && item.currency == *currency
                    && item.initial_stock == *stock =>
            {
                Plan::Answer(Reply::Item {
                    item: item.into(),
                    created: false,
                    replayed: true,
                })
            }
            Some(_) => Plan::Answer(Reply::rejected(Rejection::ItemExists)),
            None => Plan::Decide,
        },
        Command::Reserve {
            sku,
            id,
            quantity,
            ttl_ms,
        } => {
            let key = ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            };
            match state.reservations.get(&key) {
                Some(reservation)
                    if reservation.quantity == quantity.get() && reservation.ttl_ms == *ttl_ms =>
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
        _ => Plan::Decide,
    }
}

fn replay_op(state: &State, command: &Command, record: &OpRecord) -> Plan {
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
            _ => Reply::rejected(Rejection::IdempotencyConflict),
        },
        OpOutcome::Finalized => match command {
            Command::CapturePayment { id, .. } | Command::VoidPayment { id, .. } => {
                let Some(payment) = state.payments.get(id) else {
                    return Plan::Answer(Reply::rejected(Rejection::PaymentNotFound));
                };
                match (command, payment.stage) {
                    (Command::CapturePayment { .. }, Stage::Capture { .. })
                    | (Command::CapturePayment { .. }, Stage::CaptureCredit { .. }) => {
                        return Plan::Wait(WaitFor::Capture, true)
                    }
                    (Command::VoidPayment { .. }, Stage::Release(Ending::Voided)) => {
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
            _ => Reply::rejected(Rejection::IdempotencyConflict),
        },
    };
    Plan::Answer(reply.into_replayed())
}

/// The business rules: the events a command produces, or why it is refused.
pub fn decide(
    state: &State,
    command: &Command,
    now: TimestampMs,
    order_timeout_ms: u64,
) -> Result<Vec<Event>, Rejection> {
    let at = now;
    match command {
        Command::CreateAccount {
            id,
            currency,
            overdraft_limit,
        } => Ok(vec![Event::AccountCreated {
            id: id.clone(),
            currency: *currency,
            overdraft_limit: *overdraft_limit,
            at,
        }]),
        Command::Deposit {
            account,
            amount,
            currency,
            ..
        }
        | Command::Withdraw {
            account,
            amount,
            currency,
            ..
        } => {
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
            let delta = if matches!(command, Command::Withdraw { .. }) {
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
        Command::CreatePayment {
            id,
            from,
            to,
            amount,
            currency,
            capture,
            hold_timeout_ms,
        } => Ok(vec![Event::PaymentCreated {
            id: id.clone(),
            terms: PaymentTerms {
                from: from.clone(),
                to: to.clone(),
                amount: amount.value(),
                currency: *currency,
                capture: *capture,
                hold_timeout_ms: *hold_timeout_ms,
            },
            rejected: (from == to).then_some(Rejection::SameAccount),
            at,
        }]),
        Command::CapturePayment { id, amount, .. } => {
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
        Command::VoidPayment { id, .. } => {
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
        Command::CreateItem {
            sku,
            price,
            currency,
            stock,
        } => Ok(vec![Event::ItemCreated {
            sku: sku.clone(),
            price: price.value(),
            currency: *currency,
            stock: *stock,
            at,
        }]),
        Command::Restock { sku, quantity, .. } => {
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
        Command::Reserve {
            sku,
            id,
            quantity,
            ttl_ms,
        } => {
            let item = state.items.get(sku).ok_or(Rejection::ItemNotFound)?;
            if item.available() < u64::from(quantity.get()) {
                return Err(Rejection::OutOfStock);
            }
            Ok(vec![Event::Reserved {
                sku: sku.clone(),
                id: id.clone(),
                quantity: quantity.get(),
                ttl_ms: *ttl_ms,
                expires_at: now.saturating_add(*ttl_ms),
                at,
            }])
        }
        Command::CreateOrder { id, terms, .. } => Ok(vec![Event::OrderCreated {
            id: id.clone(),
            terms: terms.clone(),
            deadline: now.saturating_add(order_timeout_ms),
            at,
        }]),
        Command::CancelOrder { id, .. } => {
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
        Command::CommitReservation { sku, id, .. }
        | Command::ReleaseReservation { sku, id, .. } => {
            let key = ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            };
            let reservation = state
                .reservations
                .get(&key)
                .ok_or(Rejection::ReservationNotFound)?;
            let commit = matches!(command, Command::CommitReservation { .. });
            let expired_now =
                reservation.status == ReservationStatus::Held && reservation.expires_at <= now;
            match (commit, reservation.status) {
                (true, ReservationStatus::Held) if expired_now => {
                    Err(Rejection::ReservationExpired)
                }
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
    }
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
        // A successful reservation is its own record.
        _ => None,
    }
}

/// The answer to a command whose events were just applied, or what to wait for.
pub fn answer(state: &State, command: &Command) -> Result<Reply, WaitFor> {
    let missing = |rejection| Ok(Reply::rejected(rejection));
    match command {
        Command::CreateAccount { id, .. } => match state.accounts.get(id) {
            Some(account) => Ok(Reply::Account {
                account: account.into(),
                created: true,
            }),
            None => missing(Rejection::AccountNotFound),
        },
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
        } => match state.accounts.get(account) {
            Some(found) => Ok(Reply::BalanceChange {
                change: BalanceChangeView {
                    id: id.clone(),
                    account: account.clone(),
                    amount: amount.value(),
                    balance: found.balance,
                    currency: found.currency,
                },
                replayed: false,
            }),
            None => missing(Rejection::AccountNotFound),
        },
        Command::CreatePayment { .. } => Err(WaitFor::Outcome),
        Command::CapturePayment { .. } => Err(WaitFor::Capture),
        Command::VoidPayment { .. } => Err(WaitFor::Void),
        Command::CreateOrder { .. } => Err(WaitFor::OrderFinal),
        Command::CancelOrder { .. } => Err(WaitFor::OrderCancel),
        Command::CreateItem { sku, .. } | Command::Restock { sku, .. } => {
            match state.items.get(sku) {
                Some(item) => Ok(Reply::Item {
                    item: item.into(),
                    created: matches!(command, Command::CreateItem { .. }),
                    replayed: false,
                }),
                None => missing(Rejection::ItemNotFound),
            }
        }
        Command::Reserve { sku, id, .. }
        | Command::CommitReservation { sku, id, .. }
        | Command::ReleaseReservation { sku, id, .. } => {
            let key = ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            };
            match state.reservations.get(&key) {
                Some(reservation) => Ok(Reply::Reservation {
                    reservation: reservation.into(),
                    replayed: false,
                }),
                None => missing(Rejection::ReservationNotFound),
            }
        }
    }
}

/// An account shard's handling of a saga step: the events (a record of the step
/// and its effect) and the outcome to send back. A step seen before answers what
/// it answered then, so steps can be resent and duplicated safely.
pub fn decide_step(
    state: &State,
    saga: &SagaId,
    account_id: &crate::domain::AccountId,
    currency: crate::domain::Currency,
    kind: StepKind,
    now: TimestampMs,
    retention_ms: u64,
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
    let (mut events, outcome) = record(key, account_id, result, now, retention_ms);
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
    account_id: &crate::domain::AccountId,
    currency: crate::domain::Currency,
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

/// The outcomes of a one-phase payment run entirely on its coordinator's shard
/// (`Event::PaymentRunLocally`), in saga order: exactly what its debit and credit
/// would answer if each were handled as a local step after the one before. `None`
/// when the credit would be refused: a refund would follow, changing the payer a
/// second time, and that run goes the saga's way (one notice per change).
pub fn local_run_outcomes(
    state: &State,
    saga: &SagaId,
    terms: &PaymentTerms,
) -> Option<Vec<StepOutcome>> {
    assert!(terms.capture, "only one-phase payments run locally");
    assert!(
        terms.from != terms.to,
        "a payment to its own payer is refused at creation"
    );
    let amount = terms.amount;
    let outcome = |account, kind| match step_effect(state, saga, account, terms.currency, kind) {
        Ok(_) => StepOutcome::Done,
        Err(rejection) => StepOutcome::Rejected(rejection),
    };
    let debit = outcome(&terms.from, StepKind::Debit { amount });
    if debit != StepOutcome::Done {
        return Some(vec![debit]);
    }
    // `from` and `to` differ, so the credit finds `to` as it is after the debit.
    let credit = outcome(&terms.to, StepKind::Credit { amount });
    (credit == StepOutcome::Done).then(|| vec![debit, credit])
}

fn record(
    key: StepKey,
    account: &crate::domain::AccountId,
    result: Result<StepEffect, Rejection>,
    now: TimestampMs,
    retention_ms: u64,
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
    };
    (vec![event], outcome)
}

/// Whether a waiting client can be answered, and with what.
pub fn wake(state: &State, saga: &SagaId, wait: WaitFor) -> Option<Reply> {
    let id = match saga {
        SagaId::Payment(id) => id,
        SagaId::Order(id) => {
            let order = state.orders.get(id)?;
            if !order.is_final() {
                return None;
            }
            if wait == WaitFor::OrderCancel && order.status != OrderStatus::Cancelled {
                return Some(Reply::rejected(Rejection::OrderAlreadyFinal));
            }
            return Some(Reply::Order {
                order: OrderView::from(&**order),
                replayed: false,
            });
        }
    };
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
