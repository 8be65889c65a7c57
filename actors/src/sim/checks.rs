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
//! money in flight equals deposits minus withdrawals, at every step.

use super::world::World;
use crate::command::{Command, Reply};
use crate::domain::PaymentId;
use crate::event::Event;
use crate::journal::{recover_state, Journal};
use crate::model::SagaId;
use crate::model::{
    OpOutcome, PaymentStatus, ReservationStatus, Stage, StepKind, StepOutcome, StepTag,
};
use crate::recovery::build_core;
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
                Event::PaymentCreated { id, .. }
                | Event::PaymentStepCompleted { id, .. }
                | Event::PaymentCaptureRequested { id, .. }
                | Event::PaymentReleaseRequested { id, .. } => {
                    self.touched.insert(SagaId::Payment(id.clone()));
                }
                Event::OrderCreated { id, .. }
                | Event::OrderStepCompleted { id, .. }
                | Event::OrderEndRequested { id, .. } => {
                    self.touched.insert(SagaId::Order(id.clone()));
                }
                _ => {}
            }
        }
        self.folded[shard] = target;
        Ok(())
    }
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
        let (in_flight, next, updated_at, payment) = match saga {
            SagaId::Payment(id) => match core.state.payments.get(id) {
                Some(payment) => (
                    payment.in_flight(),
                    payment
                        .outstanding_step()
                        .map_or(Decimal::ZERO, |(_, step)| in_flight_delta(step)),
                    payment.updated_at,
                    format!("{payment:?}"),
                ),
                None => (Decimal::ZERO, Decimal::ZERO, 0, String::new()),
            },
            SagaId::Order(id) => match core.state.orders.get(id) {
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
                    format!("{order:?}"),
                ),
                None => (Decimal::ZERO, Decimal::ZERO, 0, String::new()),
            },
        };
        if payment.is_empty() {
            if outside != Decimal::ZERO {
                return Err(format!("{outside} moved for {saga}, which does not exist"));
            }
            return Ok(());
        }
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
                 {payment}{hint}"
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
        self.check_told()?;
        self.check_orders()?;
        self.check_journals()
    }

    /// Orders are not in the engine yet: their end-state checks go here (see the
    /// workload module's documentation).
    fn check_orders(&self) -> Result<(), String> {
        Ok(())
    }

    /// What clients were told agrees with how things ended.
    fn check_told(&self) -> Result<(), String> {
        let told = &self.workload.told;
        let payment = |id: &PaymentId| {
            let shard = self.router.shard_for(id.as_str()).0 as usize;
            self.nodes[shard]
                .core
                .as_ref()
                .and_then(|core| core.state.payments.get(id).cloned())
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
            let found = self.nodes[shard]
                .core
                .as_ref()
                .and_then(|core| core.state.reservations.get(&key).map(|r| r.status));
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
            let mut ended = BTreeSet::new();
            for event in &events {
                if let Some(id) = payment_of(event) {
                    if ended.contains(id) {
                        return Err(format!("payment {id} changed after it ended: {event:?}"));
                    }
                }
                replayed.apply(event);
                if let Some(id) = payment_of(event) {
                    if replayed
                        .payments
                        .get(id)
                        .is_some_and(|p| p.stage == Stage::Done)
                    {
                        ended.insert(id.clone());
                    }
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

fn payment_of(event: &Event) -> Option<&PaymentId> {
    match event {
        Event::PaymentCreated { id, .. }
        | Event::PaymentStepCompleted { id, .. }
        | Event::PaymentCaptureRequested { id, .. }
        | Event::PaymentReleaseRequested { id, .. } => Some(id),
        _ => None,
    }
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
        Event::PaymentCreated { id, .. } => {
            created.insert(format!("payment/{id}"));
        }
        Event::ItemCreated { sku, .. } => {
            created.insert(format!("item/{sku}"));
        }
        Event::Reserved { sku, id, .. } => {
            created.insert(format!("reserve/{sku}/{id}"));
        }
        Event::OpRecorded { key, record, .. } => {
            ops.entry(key.0.clone())
                .or_default()
                .push(record.outcome.clone());
        }
        _ => {}
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
