//! Waiters: clients waiting on a saga, answered when it moves, or (orders) when
//! the time they asked to wait is up.

use super::{ShardCore, Token, Waiter};
use crate::command::{Command, OrderView, Reply};
use crate::decide::{self, WaitFor};
use crate::domain::TimestampMs;
use crate::model::SagaId;

impl ShardCore {
    /// When a client creating an order stops waiting for its final state.
    pub(super) fn answer_by(&self, command: &Command) -> Option<TimestampMs> {
        match command {
            Command::CreateOrder { wait_ms, .. } => Some(self.now.saturating_add(*wait_ms)),
            Command::CreateAccount { .. }
            | Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::CreatePayment { .. }
            | Command::CapturePayment { .. }
            | Command::VoidPayment { .. }
            | Command::CreateItem { .. }
            | Command::Restock { .. }
            | Command::Reserve { .. }
            | Command::CommitReservation { .. }
            | Command::ReleaseReservation { .. }
            | Command::CancelOrder { .. } => None,
        }
    }

    pub(super) fn add_waiter(
        &mut self,
        saga: SagaId,
        token: Token,
        wait: WaitFor,
        replayed: bool,
        answer_by: Option<TimestampMs>,
    ) {
        self.batch.new_waiters.push(token);
        self.waiters.entry(saga).or_default().push(Waiter {
            token,
            wait,
            replayed,
            answer_by,
        });
    }

    /// Clients who asked to wait only so long for an order are answered with the
    /// order as it stands (the front turns that into a 202).
    pub(super) fn answer_overdue_waiters(&mut self) {
        let now = self.now;
        let overdue = |w: &Waiter| w.answer_by.is_some_and(|by| by <= now);
        for (saga, waiters) in self.waiters.iter_mut() {
            let SagaId::Order(id) = saga else {
                continue;
            };
            if !waiters.iter().any(overdue) {
                continue;
            }
            let Some(order) = self.state.orders.get(id) else {
                continue;
            };
            let view = OrderView::from(&**order);
            waiters.retain(|waiter| {
                if !overdue(waiter) {
                    return true;
                }
                let reply = Reply::Order {
                    order: view.clone(),
                    replayed: waiter.replayed,
                };
                self.batch.replies.push((waiter.token, reply));
                false
            });
        }
        self.waiters.retain(|_, waiters| !waiters.is_empty());
    }

    pub(super) fn wake(&mut self, saga: &SagaId) {
        let Some(waiters) = self.waiters.remove(saga) else {
            return;
        };
        let mut still_waiting = Vec::new();
        for waiter in waiters {
            match decide::wake(&self.state, saga, waiter.wait) {
                Some(reply) => {
                    let reply = if waiter.replayed {
                        reply.into_replayed()
                    } else {
                        reply
                    };
                    self.batch.replies.push((waiter.token, reply));
                }
                None => still_waiting.push(waiter),
            }
        }
        if !still_waiting.is_empty() {
            self.waiters.insert(saga.clone(), still_waiting);
        }
    }

    /// Drops every waiting client (the shard is going down); returns their tokens.
    /// (Commands parked on a lookup are waiting clients too.)
    pub fn take_waiters(&mut self) -> Vec<Token> {
        let parked = self.take_parked_tokens();
        self.waiters
            .drain()
            .flat_map(|(_, waiters)| waiters.into_iter().map(|w| w.token))
            .chain(parked)
            .collect()
    }

    pub fn waiting_clients(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }
}
