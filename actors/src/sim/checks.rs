//! The invariants, checked after every step and at quiescence.
//!
//! Money is checked per payment, counting steps in flight: the [`Ledger`] folds
//! each shard's journal up to what the shard holds in memory and knows, for every
//! payment, how much money its steps took out of accounts and not yet put back
//! (`outside`). The coordinator's own view of the payment (`Payment::in_flight`)
//! may lag the account shards by at most the one step it has outstanding, since it
//! sends the next step only after journaling the previous reply. So for every
//! payment `outside` is either the coordinator's in-flight amount or that amount
//! moved by the outstanding step; and every shard's balances equal its journaled
//! deposits, withdrawals and step effects. Together: the sum of balances plus the
//! money in flight equals deposits minus withdrawals, at every step. Orders are
//! sagas like payments here (`SagaId::Order`, `Order::in_flight`); their stock and
//! their endings are checked at quiescence ([`World::check_final`]).

use super::node::Answer;
use super::workload::order_answers_agree;
use super::world::World;
use crate::command::{Command, OrderView, Reply};
use crate::domain::{AccountId, OrderId, PaymentId, ReservationId, Sku};
use crate::event::Event;
use crate::journal::Journal;
use crate::model::{
    OpOutcome, PaymentStatus, ReservationKey, ReservationStatus, SagaId, Stage, StepKey, StepKind,
    StepOutcome, StepTag,
};
use crate::order::{LineState, Order, OrderStatus};
use crate::recovery::build_core;
use crate::recovery::recover_state;
use crate::rejection::Rejection;
use crate::state::local_run_steps;
use crate::state::State;
use futures::executor::block_on;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// Every shard's journal as the simulator saw it land, folded into money totals.
pub struct Ledger {
    /// Per shard, event `i` has sequence number `i + 1`.
    journals: Vec<Vec<Event>>,
    folded: Vec<usize>,
    /// Per shard, the sum of balance changes folded so far.
    balances: Vec<Decimal>,
    /// Deposits minus withdrawals folded so far, all shards.
    net_deposits: Decimal,
    /// Per saga (payment or order), money its steps took out of accounts and have
    /// not put back.
    outside: BTreeMap<SagaId, Decimal>,
    /// Sagas named by events folded since the last check.
    touched: BTreeSet<SagaId>,
}

impl Ledger {
    pub fn new(shards: usize) -> Self {
        Self {
            journals: vec![Vec::new(); shards],
            folded: vec![0; shards],
            balances: vec![Decimal::ZERO; shards],
            net_deposits: Decimal::ZERO,
            outside: BTreeMap::new(),
            touched: BTreeSet::new(),
        }
    }

    pub fn append(&mut self, shard: usize, events: Vec<Event>) {
        self.journals[shard].extend(events);
    }

    pub fn journal(&self, shard: usize) -> &[Event] {
        &self.journals[shard]
    }

    /// Folds shard `shard`'s journal up to sequence number `seq`.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per journaled event that moves money between a shard and the outside"
    )]
    fn fold_to(&mut self, shard: usize, seq: u64) -> Result<(), String> {
        let target = seq as usize;
        if target > self.journals[shard].len() {
            return Err(format!(
                "shard {shard} holds sequence {seq} in memory but the journal ends at {}",
                self.journals[shard].len()
            ));
        }
        if target < self.folded[shard] {
            return Err(format!(
                "shard {shard} went back to sequence {seq} after {}",
                self.folded[shard]
            ));
        }
        for event in &self.journals[shard][self.folded[shard]..target] {
            match event {
                Event::BalanceChanged { delta, .. } => {
                    self.balances[shard] += *delta;
                    self.net_deposits += *delta;
                }
                Event::StepApplied {
                    key,
                    outcome: StepOutcome::Done,
                    effect,
                    ..
                } => {
                    self.balances[shard] += effect.balance_delta;
                    *self.outside.entry(key.saga.clone()).or_default() -= effect.balance_delta;
                    self.touched.insert(key.saga.clone());
                }
                Event::PaymentStepAppliedLocally {
                    id,
                    outcome: StepOutcome::Done,
                    effect,
                    ..
                } => {
                    let saga = SagaId::Payment(id.clone());
                    self.balances[shard] += effect.balance_delta;
                    *self.outside.entry(saga.clone()).or_default() -= effect.balance_delta;
                    self.touched.insert(saga);
                }
                Event::PaymentRunLocally {
                    id,
                    terms,
                    outcomes,
                    ..
                } => {
                    let saga = SagaId::Payment(id.clone());
                    for (_, _, outcome, effect) in local_run_steps(terms, outcomes) {
                        if outcome == StepOutcome::Done {
                            self.balances[shard] += effect.balance_delta;
                            *self.outside.entry(saga.clone()).or_default() -= effect.balance_delta;
                        }
                    }
                    self.touched.insert(saga);
                }
                Event::PaymentCreated { id, .. }
                | Event::PaymentStepCompleted { id, .. }
                | Event::PaymentStepAppliedLocally { id, .. }
                | Event::PaymentCaptureRequested { id, .. }
                | Event::PaymentReleaseRequested { id, .. } => {
                    self.touched.insert(SagaId::Payment(id.clone()));
                }
                Event::OrderCreated { id, .. }
                | Event::OrderRefusedLocally { id, .. }
                // The capture and the credit of a local run are on this shard, in
                // the same event: no money leaves the shard's balances.
                | Event::OrderRunLocally { id, .. }
                // A local rejection moves no money.
                | Event::OrderRejectedLocally { id, .. }
                | Event::OrderStepCompleted { id, .. }
                | Event::OrderEndRequested { id, .. } => {
                    self.touched.insert(SagaId::Order(id.clone()));
                }
                Event::AccountCreated { .. }
                | Event::StepApplied { .. }
                | Event::OpRecorded { .. }
                | Event::ItemCreated { .. }
                | Event::Restocked { .. }
                | Event::Reserved { .. }
                | Event::ReservationClosed { .. }
                | Event::LineStepApplied { .. }
                | Event::RecordsPruned { .. }
                // Leaving memory and coming back move no money.
                | Event::EntitiesArchived { .. }
                | Event::EntityRecalled { .. }
        | Event::StepFloorRaised { .. } => {}
            }
        }
        self.folded[shard] = target;
        Ok(())
    }
}

/// A saga its coordinator does not know has moved no money.
fn no_saga(saga: &SagaId, outside: Decimal) -> Result<(), String> {
    if outside != Decimal::ZERO {
        return Err(format!("{outside} moved for {saga}, which does not exist"));
    }
    Ok(())
}

/// How much the coordinator's in-flight amount moves when `step` completes.
fn in_flight_delta(step: StepKind) -> Decimal {
    match step {
        StepKind::Debit { amount } | StepKind::Capture { amount } => amount,
        StepKind::Credit { amount } | StepKind::Refund { amount } => -amount,
        StepKind::Hold { .. } | StepKind::Validate | StepKind::Release => Decimal::ZERO,
    }
}

impl World {
    /// Invariants that hold after every step.
    pub fn check_step(&mut self) -> Result<(), String> {
        for shard in 0..self.nodes.len() {
            let seq = match &self.nodes[shard].core {
                Some(core) => core.state.last_seq,
                None => self.ledger.journal(shard).len() as u64,
            };
            self.ledger.fold_to(shard, seq)?;
            let Some(core) = &self.nodes[shard].core else {
                continue;
            };
            let state = &core.state;
            let mut balances = Decimal::ZERO;
            for account in state.accounts.values() {
                balances += account.balance;
                if account.held < Decimal::ZERO {
                    return Err(format!("negative hold: {account:?}"));
                }
                if account.balance - account.held + account.overdraft_limit < Decimal::ZERO {
                    return Err(format!(
                        "available below zero beyond the overdraft: {account:?}"
                    ));
                }
            }
            if balances != self.ledger.balances[shard] {
                return Err(format!(
                    "shard {shard}: balances add up to {balances}, its journal to {}",
                    self.ledger.balances[shard]
                ));
            }
            for item in state.items.values() {
                if item.reserved > item.on_hand {
                    return Err(format!("oversold: {item:?}"));
                }
            }
        }
        let touched = std::mem::take(&mut self.ledger.touched);
        for saga in &touched {
            self.check_saga_money(saga)?;
        }
        if self
            .report
            .steps
            .is_multiple_of(super::world::FULL_CHECK_EVERY_STEPS)
        {
            self.check_full()?;
        }
        Ok(())
    }

    /// The account shards' view of a saga's money agrees with its coordinator's.
    fn check_saga_money(&self, saga: &SagaId) -> Result<(), String> {
        let id = match saga {
            SagaId::Payment(id) => id.as_str(),
            SagaId::Order(id) => id.as_str(),
        };
        let coordinator = self.router.shard_for(id).0 as usize;
        let Some(core) = &self.nodes[coordinator].core else {
            // Checked once the coordinator is back.
            return Ok(());
        };
        let outside = self.ledger.outside.get(saga).copied().unwrap_or_default();
        let state = &core.state;
        // The saga's own view; its description is only written for a failure.
        let (in_flight, next, updated_at, describe): (_, _, _, Box<dyn Fn() -> String>) = match saga
        {
            SagaId::Payment(id) => match state.payments.get(id) {
                Some(payment) => (
                    payment.in_flight(),
                    payment
                        .outstanding_step()
                        .map_or(Decimal::ZERO, |(_, step)| in_flight_delta(step)),
                    payment.updated_at,
                    Box::new(move || format!("{payment:?}")),
                ),
                None => return no_saga(saga, outside),
            },
            SagaId::Order(id) => match state.orders.get(id) {
                Some(order) => (
                    order.in_flight(),
                    order
                        .outstanding_steps()
                        .iter()
                        .map(|step| match step {
                            crate::order::OrderStep::Account { kind, .. } => in_flight_delta(*kind),
                            crate::order::OrderStep::Line { .. } => Decimal::ZERO,
                        })
                        .sum(),
                    order.updated_at,
                    Box::new(move || format!("{order:?}")),
                ),
                None => return no_saga(saga, outside),
            },
        };
        if outside != in_flight && outside != in_flight + next {
            let waited_ms = self.now_ms.saturating_sub(updated_at);
            let retention_ms = self.scenario.limits.retention_ms;
            let hint = if waited_ms >= retention_ms {
                format!(
                    " [its step has been outstanding for {waited_ms} ms, longer than the \
                     retention of {retention_ms} ms: the account shard's step record may be \
                     gone, so a resend applied the step again]"
                )
            } else {
                String::new()
            };
            return Err(format!(
                "money of {saga} is not conserved: {outside} left the accounts, the \
                 coordinator counts {in_flight} in flight (next step moves {next}): \
                 {}{hint}",
                describe()
            ));
        }
        Ok(())
    }

    /// Slower invariants, checked every few steps: counters match their parts.
    pub fn check_full(&self) -> Result<(), String> {
        for node in &self.nodes {
            let Some(core) = &node.core else {
                continue;
            };
            let state = &core.state;
            let mut reserved: BTreeMap<&crate::domain::Sku, u64> = BTreeMap::new();
            for reservation in state.reservations.values() {
                if reservation.status == ReservationStatus::Held {
                    *reserved.entry(&reservation.sku).or_default() +=
                        u64::from(reservation.quantity);
                }
            }
            for item in state.items.values() {
                let held = reserved.get(&item.sku).copied().unwrap_or(0);
                if held != item.reserved {
                    return Err(format!(
                        "item {} counts {} reserved, its held reservations {held}",
                        item.sku, item.reserved
                    ));
                }
            }
            // Active holds: a hold step done, with no release or capture after it.
            // Payments and orders alike: both hold with `StepTag::Hold` under their
            // own saga id and close the hold with a capture or a release.
            let mut held: BTreeMap<&crate::domain::AccountId, Decimal> = BTreeMap::new();
            for (key, record) in state.steps.iter() {
                if key.tag != StepTag::Hold || record.outcome != StepOutcome::Done {
                    continue;
                }
                let closed = [StepTag::Release, StepTag::Capture].iter().any(|tag| {
                    state.steps.contains_key(&crate::model::StepKey {
                        saga: key.saga.clone(),
                        tag: *tag,
                    })
                });
                if let (false, Some(account)) = (closed, &record.account) {
                    *held.entry(account).or_default() += record.amount;
                }
            }
            for account in state.accounts.values() {
                let expected = held.get(&account.id).copied().unwrap_or_default();
                if account.held != expected {
                    return Err(format!(
                        "account {} holds {}, its active holds add up to {expected}",
                        account.id, account.held
                    ));
                }
            }
            let payments = state
                .payments
                .iter()
                .map(|(id, _)| SagaId::Payment(id.clone()));
            let orders = state.orders.iter().map(|(id, _)| SagaId::Order(id.clone()));
            for saga in payments.chain(orders) {
                self.check_saga_money(&saga)?;
            }
        }
        Ok(())
    }

    /// Everything that must hold once the world is quiet and every timer has fired.
    pub fn check_final(&mut self) -> Result<(), String> {
        self.check_step()?;
        self.check_full()?;
        let mut money = Decimal::ZERO;
        for node in &self.nodes {
            let core = node.core.as_ref().ok_or("a shard is down at the end")?;
            let state = &core.state;
            money += state.money_total();
            for account in state.accounts.values() {
                if account.held != Decimal::ZERO {
                    return Err(format!("money still held at the end: {account:?}"));
                }
            }
            for item in state.items.values() {
                if item.reserved != 0 {
                    return Err(format!("stock still reserved at the end: {item:?}"));
                }
            }
            for payment in state.payments.values() {
                if payment.stage != Stage::Done {
                    return Err(format!("payment never finished: {payment:?}"));
                }
            }
            for order in state.orders.values() {
                if !order.is_final() {
                    return Err(format!("order never finished: {order:?}"));
                }
            }
            // Every saga has ended and its coordinator's floor has passed its
            // steps: a stamped step record left now would be memory that grows
            // with history.
            if let Some((key, record)) = state.steps.iter().find(|(_, r)| r.origin.is_some()) {
                return Err(format!(
                    "shard {} still holds a step record after every saga ended: {key:?} {record:?} \
                     (its sender's floor: {})",
                    node.id,
                    record.origin.map_or(0, |o| state.step_floor(o.from))
                ));
            }
        }
        if money != self.ledger.net_deposits {
            return Err(format!(
                "money is not conserved: balances add up to {money}, deposits minus \
                 withdrawals to {}",
                self.ledger.net_deposits
            ));
        }
        if let Some((id, amount)) = self.ledger.outside.iter().find(|(_, a)| !a.is_zero()) {
            return Err(format!("{amount} of {id} never arrived anywhere"));
        }
        self.merged = self.merged_states()?;
        self.check_told()?;
        self.check_orders()?;
        self.check_journals()
    }

    /// Each shard's state with everything it archived put back: what clients were
    /// told is checked against where things ended, in memory or not.
    fn merged_states(&self) -> Result<Vec<State>, String> {
        let archived = self.journal.archived_entities();
        self.nodes
            .iter()
            .map(|node| {
                let core = node.core.as_ref().ok_or("a shard is down at the end")?;
                Ok(core.state.with_archived(
                    archived
                        .iter()
                        .filter(|(shard, _)| *shard == node.id)
                        .map(|(_, entity)| entity.clone()),
                ))
            })
            .collect()
    }

    /// Every order ended once, along a valid path, and left the stock and money as
    /// its ending says; and everything clients were shown of it agrees with that.
    #[expect(
        clippy::too_many_lines,
        reason = "checks every order invariant in one pass over the orders"
    )]
    fn check_orders(&self) -> Result<(), String> {
        let traces = self.order_traces()?;
        let mut orders = BTreeMap::new();
        for state in &self.merged {
            orders.extend(state.orders.iter().map(|(id, order)| (id, &**order)));
        }
        let state_of = |key: &str| {
            let shard = self.router.shard_for(key).0 as usize;
            self.merged
                .get(shard)
                .ok_or_else(|| format!("the shard of {key} is down at the end"))
        };
        let nobody = OrderTrace::default();
        // Units of each SKU that confirmed orders bought.
        let mut bought: BTreeMap<Sku, u64> = BTreeMap::new();
        for (id, order) in &orders {
            check_order_path(order)?;
            let trace = traces.get(*id).unwrap_or(&nobody);
            let confirmed = order.status == OrderStatus::Confirmed;
            let ended_at = order.history.last().map_or(0, |(_, at)| *at);
            match order.status {
                OrderStatus::Expired if ended_at < order.deadline => {
                    return Err(format!("order {id} expired before its deadline: {order:?}"));
                }
                OrderStatus::Cancelled => {
                    let asked = self.workload.requests.iter().any(|request| {
                        matches!(&request.command, Command::CancelOrder { id: cancelled, .. } if cancelled == *id)
                            && request.decided_at_ms.is_some_and(|at| at <= ended_at)
                    });
                    if !asked {
                        return Err(format!(
                            "order {id} was cancelled, but nobody asked: {order:?}"
                        ));
                    }
                }
                _ => {}
            }
            for (index, (line, progress)) in order.terms.lines.iter().zip(&order.lines).enumerate()
            {
                let state = state_of(line.sku.as_str())?;
                let key = ReservationKey {
                    sku: line.sku.clone(),
                    id: ReservationId::for_order_line(id, index as u16),
                };
                let reservation = state.reservations.get(&key);
                let status = reservation.map(|r| r.status);
                if confirmed {
                    let item = state.items.get(&line.sku).ok_or_else(|| {
                        format!("order {id} confirmed a line on a missing item {}", line.sku)
                    })?;
                    let fits = status == Some(ReservationStatus::Committed)
                        && reservation.is_some_and(|r| r.quantity == line.quantity.get())
                        && progress.state == LineState::Committed
                        && progress.unit_price == Some(item.price)
                        && progress.currency == Some(item.currency);
                    if !fits {
                        return Err(format!(
                            "confirmed order {id}: line {index} is {progress:?}, its reservation \
                             {reservation:?}, its item {item:?}"
                        ));
                    }
                    *bought.entry(line.sku.clone()).or_default() += u64::from(line.quantity.get());
                } else {
                    // Every line answered before the order ended: a line still
                    // waiting could be reserved after the order let go of it.
                    let gave_back = matches!(status, None | Some(ReservationStatus::Released))
                        && matches!(progress.state, LineState::Refused(_) | LineState::Released);
                    if !gave_back {
                        return Err(format!(
                            "{:?} order {id}: line {index} is {progress:?}, its reservation \
                             {reservation:?}",
                            order.status
                        ));
                    }
                }
            }
            let mut expected_balance: BTreeMap<AccountId, Decimal> = BTreeMap::new();
            let done = |tag| trace.done.get(&tag).copied().unwrap_or(0);
            let steps_fit = if confirmed {
                let total = order
                    .total
                    .ok_or_else(|| format!("confirmed order {id} has no total"))?;
                let priced: Option<Decimal> = order
                    .lines
                    .iter()
                    .zip(&order.terms.lines)
                    .map(|(progress, line)| {
                        progress
                            .unit_price
                            .map(|p| p * Decimal::from(line.quantity.get()))
                    })
                    .sum();
                if priced != Some(total) {
                    return Err(format!(
                        "confirmed order {id} totals {total}, its lines {priced:?}"
                    ));
                }
                // One currency throughout: every line's item, the payer, the merchant.
                let currency_of = |account: &AccountId| {
                    state_of(account.as_str())
                        .ok()
                        .and_then(|state| state.accounts.get(account).map(|a| a.currency))
                };
                let one_currency = order.currency.is_some()
                    && order
                        .lines
                        .iter()
                        .all(|line| line.currency == order.currency)
                    && currency_of(&order.terms.account) == order.currency
                    && currency_of(&order.terms.merchant) == order.currency;
                if !one_currency {
                    return Err(format!("confirmed order {id} mixes currencies: {order:?}"));
                }
                *expected_balance
                    .entry(order.terms.account.clone())
                    .or_default() -= total;
                *expected_balance
                    .entry(order.terms.merchant.clone())
                    .or_default() += total;
                done(StepTag::Hold) == 1
                    && done(StepTag::Capture) == 1
                    && done(StepTag::Credit) == 1
                    && done(StepTag::Release) == 0
            } else {
                done(StepTag::Capture) == 0
                    && done(StepTag::Credit) == 0
                    && done(StepTag::Hold) <= done(StepTag::Release)
            };
            expected_balance.retain(|_, delta| !delta.is_zero());
            let mut balance = trace.balance.clone();
            balance.retain(|_, delta| !delta.is_zero());
            let held_left = trace.held.values().any(|delta| !delta.is_zero());
            if !steps_fit || balance != expected_balance || held_left {
                return Err(format!(
                    "{:?} order {id} moved {balance:?} (expected {expected_balance:?}), left \
                     holds {:?}, applied steps {:?}: {order:?}",
                    order.status, trace.held, trace.done
                ));
            }
        }
        self.check_order_stock(&orders, &bought, &traces)?;
        self.check_refused_cancels(&orders)?;
        self.check_told_orders(&orders)
    }

    /// Every item's stock adds up, and the units committed for orders are exactly
    /// what the confirmed orders bought.
    fn check_order_stock(
        &self,
        orders: &BTreeMap<&OrderId, &Order>,
        bought: &BTreeMap<Sku, u64>,
        traces: &BTreeMap<OrderId, OrderTrace>,
    ) -> Result<(), String> {
        let mut committed_for_orders: BTreeMap<Sku, u64> = BTreeMap::new();
        for (shard, state) in self.merged.iter().enumerate() {
            let mut committed: BTreeMap<&Sku, u64> = BTreeMap::new();
            for reservation in state.reservations.values() {
                let quantity = u64::from(reservation.quantity);
                if reservation.status == ReservationStatus::Committed {
                    *committed.entry(&reservation.sku).or_default() += quantity;
                }
                // Only the engine makes ids with a '~': an order line's reservation.
                let Some((order, line)) = reservation.id.as_str().split_once('~') else {
                    continue;
                };
                let line_of_order = OrderId::parse(order).ok().and_then(|id| {
                    let order = orders.get(&id)?;
                    order.terms.lines.get(line.parse::<usize>().ok()?)
                });
                let fits = line_of_order.is_some_and(|l| {
                    l.sku == reservation.sku && l.quantity.get() == reservation.quantity
                });
                if !fits {
                    return Err(format!(
                        "reservation {reservation:?} belongs to no order line ({line_of_order:?})"
                    ));
                }
                if reservation.status == ReservationStatus::Committed {
                    *committed_for_orders
                        .entry(reservation.sku.clone())
                        .or_default() += quantity;
                }
            }
            let restocked = restocked_per_sku(self.ledger.journal(shard));
            for item in state.items.values() {
                let added = restocked.get(&item.sku).copied().unwrap_or(0);
                let sold = committed.get(&item.sku).copied().unwrap_or(0);
                if item.initial_stock + added != item.on_hand + sold {
                    return Err(format!(
                        "item {} started with {} and got {added} more; {sold} are committed, \
                         but {} are on hand",
                        item.sku, item.initial_stock, item.on_hand
                    ));
                }
            }
        }
        if committed_for_orders != *bought {
            return Err(format!(
                "order reservations committed {committed_for_orders:?}, confirmed orders bought \
                 {bought:?}"
            ));
        }
        if let Some(id) = traces.keys().find(|id| !orders.contains_key(id)) {
            return Err(format!("steps ran for order {id}, which does not exist"));
        }
        Ok(())
    }

    /// A cancel is refused only when it could not have worked: the order did not
    /// exist yet, or it was already past the point of no return (authorized,
    /// expiring, ending another way, or cancelled by someone else).
    fn check_refused_cancels(&self, orders: &BTreeMap<&OrderId, &Order>) -> Result<(), String> {
        for (number, request) in self.workload.requests.iter().enumerate() {
            let (Command::CancelOrder { id, .. }, Some(decided_at)) =
                (&request.command, request.decided_at_ms)
            else {
                continue;
            };
            // A replay answers what the key's first cancel was told, back then.
            let Some(Answer::Reply(Reply::Rejected {
                rejection,
                replayed: false,
            })) = &request.answer
            else {
                continue;
            };
            let order = orders.get(id);
            let status_at = |status| {
                order.and_then(|o| o.history.iter().find(|(s, _)| *s == status).map(|h| h.1))
            };
            let explained = match (rejection, order) {
                // Created in the same millisecond, just after the cancel, at most.
                (Rejection::OrderNotFound, None) => true,
                (Rejection::OrderNotFound, Some(order)) => order.created_at >= decided_at,
                (Rejection::OrderAlreadyFinal, Some(order)) => match order.status {
                    OrderStatus::Confirmed => {
                        status_at(OrderStatus::Authorized).is_some_and(|at| at <= decided_at)
                    }
                    OrderStatus::Expired => order.deadline <= decided_at,
                    OrderStatus::Cancelled => self.workload.requests.iter().any(|other| {
                        matches!(&other.command, Command::CancelOrder { id: same, .. } if same == id)
                            && other.decided_at_ms.is_some_and(|at| at <= decided_at)
                            && matches!(other.answer, Some(Answer::Reply(Reply::Order { .. })) | Some(Answer::Retry) | None)
                    }),
                    // Refused while it was giving back what it took, or after.
                    OrderStatus::Rejected => true,
                    _ => false,
                },
                _ => true,
            };
            if !explained {
                return Err(format!(
                    "request {number}: a cancel of order {id} at {decided_at} was refused \
                     {rejection:?}, but the order was {order:?}"
                ));
            }
        }
        Ok(())
    }

    /// Every order a client was shown agrees with its final state: a final answer
    /// is the final state; an answer given before the end shows a prefix of its
    /// history; a cancel shows a cancelled order.
    fn check_told_orders(&self, orders: &BTreeMap<&OrderId, &Order>) -> Result<(), String> {
        for (id, told) in &self.workload.told.orders {
            let order = orders
                .get(id)
                .ok_or_else(|| format!("order {id} was shown to a client and is gone"))?;
            let now = OrderView::from(*order);
            for shown in told {
                let agrees = if shown.view.is_final() {
                    shown.view == now
                } else {
                    order_answers_agree(&shown.view, &now)
                        && shown.view.history.len() < now.history.len()
                };
                if !agrees || (shown.by_cancel && now.status != OrderStatus::Cancelled) {
                    return Err(format!(
                        "request {} was shown order {id} as {:?}, which ended as {now:?}",
                        shown.request, shown.view
                    ));
                }
            }
        }
        Ok(())
    }

    /// What every order's steps did, from the journals (step records age out; the
    /// journals keep everything). A step refused after the order was authorized
    /// would leave it stuck for good (`Order::expects` ignores such refusals), so
    /// any is a failure in itself.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per journaled event that moves an order's money or stock"
    )]
    fn order_traces(&self) -> Result<BTreeMap<OrderId, OrderTrace>, String> {
        let mut traces: BTreeMap<OrderId, OrderTrace> = BTreeMap::new();
        for shard in 0..self.nodes.len() {
            for event in self.ledger.journal(shard) {
                match event {
                    Event::StepApplied {
                        key:
                            StepKey {
                                saga: SagaId::Order(id),
                                tag,
                            },
                        account,
                        outcome,
                        effect,
                        ..
                    } => match outcome {
                        StepOutcome::Done => {
                            let trace = traces.entry(id.clone()).or_default();
                            *trace.balance.entry(account.clone()).or_default() +=
                                effect.balance_delta;
                            *trace.held.entry(account.clone()).or_default() += effect.held_delta;
                            *trace.done.entry(*tag).or_default() += 1;
                        }
                        StepOutcome::Rejected(_)
                            if matches!(tag, StepTag::Hold | StepTag::Validate) => {}
                        StepOutcome::Rejected(rejection) => {
                            return Err(format!(
                                "order {id}: step {tag:?} on {account} was refused \
                                 ({rejection:?}) after the order was authorized"
                            ));
                        }
                    },
                    Event::OrderRunLocally { id, terms, .. } => {
                        // Its steps took effect on this shard with the total of its
                        // lines at their items' prices (prices never change). That
                        // the run moves exactly what the saga would, to the right
                        // accounts, is checked against the saga itself in
                        // `tests/orders.rs`; here the shard's balance sum and the
                        // held amounts guard it.
                        let state = self
                            .merged
                            .get(shard)
                            .ok_or_else(|| format!("shard {shard} is down at the end"))?;
                        let total: Option<Decimal> = terms
                            .lines
                            .iter()
                            .map(|line| {
                                let item = state.items.get(&line.sku)?;
                                Some(item.price * Decimal::from(line.quantity.get()))
                            })
                            .sum();
                        let total = total.ok_or_else(|| {
                            format!("order {id} ran locally on an item shard {shard} lacks")
                        })?;
                        let trace = traces.entry(id.clone()).or_default();
                        *trace.balance.entry(terms.account.clone()).or_default() -= total;
                        *trace.balance.entry(terms.merchant.clone()).or_default() += total;
                        for tag in [
                            StepTag::Hold,
                            StepTag::Validate,
                            StepTag::Capture,
                            StepTag::Credit,
                        ] {
                            *trace.done.entry(tag).or_default() += 1;
                        }
                    }
                    Event::LineStepApplied {
                        key:
                            StepKey {
                                saga: SagaId::Order(id),
                                tag,
                            },
                        outcome: StepOutcome::Rejected(rejection),
                        ..
                    } if !matches!(tag, StepTag::ReserveLine(_)) => {
                        return Err(format!(
                            "order {id}: line step {tag:?} was refused ({rejection:?}) after \
                             the order was authorized"
                        ));
                    }
                    Event::AccountCreated { .. }
                    | Event::StepApplied { .. }
                    | Event::LineStepApplied { .. }
                    | Event::BalanceChanged { .. }
                    | Event::OpRecorded { .. }
                    | Event::PaymentCreated { .. }
                    | Event::PaymentStepCompleted { .. }
                    | Event::PaymentCaptureRequested { .. }
                    | Event::PaymentReleaseRequested { .. }
                    | Event::ItemCreated { .. }
                    | Event::Restocked { .. }
                    | Event::Reserved { .. }
                    | Event::ReservationClosed { .. }
                    | Event::OrderCreated { .. }
                    | Event::OrderStepCompleted { .. }
                    | Event::OrderEndRequested { .. }
                    | Event::RecordsPruned { .. }
                    | Event::PaymentStepAppliedLocally { .. }
                    | Event::PaymentRunLocally { .. }
                    | Event::OrderRefusedLocally { .. }
                    | Event::OrderRejectedLocally { .. }
                    | Event::EntitiesArchived { .. }
                    | Event::EntityRecalled { .. }
                    | Event::StepFloorRaised { .. } => {}
                }
            }
        }
        Ok(traces)
    }

    /// What clients were told agrees with how things ended.
    fn check_told(&self) -> Result<(), String> {
        let told = &self.workload.told;
        let payment = |id: &PaymentId| {
            let shard = self.router.shard_for(id.as_str()).0 as usize;
            self.merged
                .get(shard)
                .and_then(|state| state.payments.get(id).cloned())
                .ok_or_else(|| format!("acknowledged payment {id} is gone"))
        };
        for (id, first) in &told.payment_first {
            let status = payment(id)?.status;
            let fits = match first {
                PaymentStatus::Authorized => matches!(
                    status,
                    PaymentStatus::Captured | PaymentStatus::Voided | PaymentStatus::Expired
                ),
                other => status == *other,
            };
            if !fits {
                return Err(format!(
                    "payment {id} was {first:?} to its client, ended {status:?}"
                ));
            }
        }
        for (id, amount) in &told.captured {
            let payment = payment(id)?;
            if payment.status != PaymentStatus::Captured || payment.captured_amount != *amount {
                return Err(format!(
                    "capture of {amount} acknowledged, payment ended {payment:?}"
                ));
            }
        }
        for id in &told.voided {
            let payment = payment(id)?;
            if payment.status != PaymentStatus::Voided {
                return Err(format!("void acknowledged, payment ended {payment:?}"));
            }
        }
        for ((sku, id), status) in &told.reservations {
            let shard = self.router.shard_for(sku.as_str()).0 as usize;
            let key = crate::model::ReservationKey {
                sku: sku.clone(),
                id: id.clone(),
            };
            let found = self
                .merged
                .get(shard)
                .and_then(|state| state.reservations.get(&key).map(|r| r.status));
            if found != Some(*status) {
                return Err(format!(
                    "reservation {sku}/{id} was {status:?} to its client, ended {found:?}"
                ));
            }
        }
        Ok(())
    }

    /// Every shard's journal, replayed from scratch and recovered the way the
    /// actor recovers, rebuilds its live state; payments end once; and every
    /// acknowledged write is in it with the answer the client saw.
    fn check_journals(&self) -> Result<(), String> {
        let mut created = BTreeSet::new();
        let mut ops = BTreeMap::new();
        for (shard, node) in self.nodes.iter().enumerate() {
            let live = &node
                .core
                .as_ref()
                .ok_or("a shard is down at the end")?
                .state;
            let mut events = Vec::new();
            for record in self.journal.records(node.id) {
                events.extend(record.decode().map_err(|e| e.to_string())?);
            }
            if events != self.ledger.journal(shard) {
                return Err(format!(
                    "shard {shard}: the journal holds other events than were written"
                ));
            }
            let mut replayed = State::new(self.scenario.hash_seed);
            replayed.set_archived_filter_bytes(self.scenario.limits.archived_filter_bytes);
            let mut ended = BTreeSet::new();
            for event in &events {
                let saga = event.saga();
                if let Some(saga) = &saga {
                    if ended.contains(saga) {
                        return Err(format!("{saga} changed after it ended: {event:?}"));
                    }
                }
                replayed.apply(event);
                let done = match &saga {
                    Some(SagaId::Payment(id)) => replayed
                        .payments
                        .get(id)
                        .is_some_and(|p| p.stage == Stage::Done),
                    Some(SagaId::Order(id)) => replayed
                        .orders
                        .get(id)
                        .is_some_and(|order| order.is_final()),
                    None => false,
                };
                if let (true, Some(saga)) = (done, saga) {
                    ended.insert(saga);
                }
                note_created(event, &mut created, &mut ops);
            }
            if replayed != *live {
                return Err(format!(
                    "shard {shard}: replaying the journal from scratch gives another state"
                ));
            }
            let recovered = block_on(self.journal.load(node.id)).map_err(|e| e.to_string())?;
            let (state, events) = recover_state(node.id, &recovered, self.scenario.hash_seed)
                .map_err(|e| e.to_string())?;
            let core = build_core(
                node.id,
                self.router,
                self.scenario.limits.clone(),
                state,
                &events,
                0,
            );
            if core.state != *live {
                return Err(format!(
                    "shard {shard}: recovering from snapshot and journal gives another state"
                ));
            }
        }
        for (key, command, reply) in self.workload.groups_acknowledged() {
            check_durable(key, command, reply, &created, &ops)?;
        }
        Ok(())
    }
}

/// Where one order's steps moved money, and which of its steps took effect.
#[derive(Debug, Default)]
struct OrderTrace {
    balance: BTreeMap<AccountId, Decimal>,
    held: BTreeMap<AccountId, Decimal>,
    done: BTreeMap<StepTag, u32>,
}

/// The history is one path: `pending → reserved → authorized → confirmed`, or a
/// prefix of it before authorization and then one other ending; exactly one final
/// status, last; a reason exactly when rejected, one the API lists; time never
/// goes back.
fn check_order_path(order: &Order) -> Result<(), String> {
    const PATH: [OrderStatus; 4] = [
        OrderStatus::Pending,
        OrderStatus::Reserved,
        OrderStatus::Authorized,
        OrderStatus::Confirmed,
    ];
    let statuses: Vec<OrderStatus> = order.history.iter().map(|(status, _)| *status).collect();
    let Some((last, before)) = statuses.split_last() else {
        return Err(format!("order {} has no history", order.id));
    };
    let path_fits = order.is_final()
        && order.status == *last
        && last.is_final()
        && before.len() < PATH.len()
        && *before == PATH[..before.len()]
        && if *last == OrderStatus::Confirmed {
            before.len() == 3
        } else {
            // Once authorized, an order always confirms.
            before.len() <= 2
        };
    let reason_fits = match (order.status, order.reason) {
        (OrderStatus::Rejected, Some(reason)) => matches!(
            reason,
            Rejection::OutOfStock
                | Rejection::InsufficientFunds
                | Rejection::AccountNotFound
                | Rejection::ItemNotFound
                | Rejection::CurrencyMismatch
        ),
        (_, reason) => reason.is_none() && order.status != OrderStatus::Rejected,
    };
    let in_time = order.history[0].1 == order.created_at
        && order.history.windows(2).all(|pair| pair[0].1 <= pair[1].1);
    if !(path_fits && reason_fits && in_time) {
        return Err(format!(
            "order {} ended along an invalid path: {order:?}",
            order.id
        ));
    }
    Ok(())
}

/// Units restocked per SKU, from one shard's journal.
fn restocked_per_sku(journal: &[Event]) -> BTreeMap<&Sku, u64> {
    let mut restocked = BTreeMap::new();
    for event in journal {
        if let Event::Restocked { sku, quantity, .. } = event {
            *restocked.entry(sku).or_default() += quantity;
        }
    }
    restocked
}

/// Collects what the journal says was created or recorded, by client-facing key.
fn note_created(
    event: &Event,
    created: &mut BTreeSet<String>,
    ops: &mut BTreeMap<String, Vec<OpOutcome>>,
) {
    match event {
        Event::AccountCreated { id, .. } => {
            created.insert(format!("account/{id}"));
        }
        Event::PaymentCreated { id, .. } | Event::PaymentRunLocally { id, .. } => {
            created.insert(format!("payment/{id}"));
        }
        Event::ItemCreated { sku, .. } => {
            created.insert(format!("item/{sku}"));
        }
        Event::OrderCreated { id, .. }
        | Event::OrderRefusedLocally { id, .. }
        | Event::OrderRunLocally { id, .. }
        | Event::OrderRejectedLocally { id, .. } => {
            created.insert(format!("order/{id}"));
        }
        Event::Reserved { sku, id, .. } => {
            created.insert(format!("reserve/{sku}/{id}"));
        }
        Event::OpRecorded { key, record, .. } => {
            ops.entry(key.0.clone())
                .or_default()
                .push(record.outcome.clone());
        }
        Event::BalanceChanged { .. }
        | Event::PaymentStepCompleted { .. }
        | Event::PaymentCaptureRequested { .. }
        | Event::PaymentReleaseRequested { .. }
        | Event::StepApplied { .. }
        | Event::Restocked { .. }
        | Event::ReservationClosed { .. }
        | Event::OrderStepCompleted { .. }
        | Event::OrderEndRequested { .. }
        | Event::LineStepApplied { .. }
        | Event::RecordsPruned { .. }
        | Event::PaymentStepAppliedLocally { .. }
        // A recalled entity was created long before; it is not created again.
        | Event::EntitiesArchived { .. }
        | Event::EntityRecalled { .. }
        | Event::StepFloorRaised { .. } => {}
    }
}

/// An acknowledged answer is backed by the journal.
fn check_durable(
    key: &str,
    command: &Command,
    reply: &Reply,
    created: &BTreeSet<String>,
    ops: &BTreeMap<String, Vec<OpOutcome>>,
) -> Result<(), String> {
    let lost = || {
        Err(format!(
            "{key}: acknowledged as {reply:?} but not in the journal"
        ))
    };
    // A key may have been recorded again after its retention ran out; the
    // acknowledged outcome must be among its records.
    let recorded = ops.get(key).map(Vec::as_slice).unwrap_or_default();
    match (command, reply) {
        (Command::CreateAccount { .. }, Reply::Account { .. })
        | (Command::CreatePayment { .. }, _)
        | (Command::CreateItem { .. }, Reply::Item { .. })
        | (Command::CreateOrder { .. }, Reply::Order { .. })
        | (Command::Reserve { .. }, Reply::Reservation { .. }) => {
            if !created.contains(key) {
                return lost();
            }
        }
        (_, Reply::Rejected { rejection, .. }) => {
            if !recorded.contains(&OpOutcome::Rejected(*rejection)) {
                return lost();
            }
        }
        (_, Reply::BalanceChange { change, .. }) => {
            let found = recorded.iter().any(|outcome| {
                matches!(outcome, OpOutcome::BalanceChanged { balance, .. } if *balance == change.balance)
            });
            if !found {
                return lost();
            }
        }
        _ => {
            if recorded.is_empty() {
                return lost();
            }
        }
    }
    Ok(())
}
