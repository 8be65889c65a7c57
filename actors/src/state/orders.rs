//! Orders: an order's progress through its saga, on its coordinator's shard.

use super::State;
use crate::domain::{Currency, OrderId, TimestampMs};
use crate::model::{StepOutcome, StepTag, TimerKey};
use crate::order::{Order, OrderEnding, OrderStage, OrderTerms};
use rust_decimal::Decimal;
use std::sync::Arc;

impl State {
    /// `Event::OrderCreated`: the order, and its deadline.
    pub(super) fn create_order(
        &mut self,
        id: &OrderId,
        terms: &OrderTerms,
        deadline: TimestampMs,
        at: TimestampMs,
    ) {
        let mut order = Order::new(id.clone(), terms.clone(), deadline, at);
        order.stage_seq = self.last_seq;
        self.orders.insert(id.clone(), Arc::new(order));
        self.timers
            .insert((deadline, TimerKey::OrderDeadline(id.clone())));
    }

    /// `Event::OrderStepCompleted`: a step's answer moves the order; once it is
    /// done, its deadline goes.
    pub(super) fn complete_order_step(
        &mut self,
        id: &OrderId,
        tag: StepTag,
        outcome: StepOutcome,
        price: Option<(Decimal, Currency)>,
        at: TimestampMs,
    ) {
        let seq = self.last_seq;
        let order = self.order_mut(id);
        let stage_before = order.stage;
        order.on_reply(tag, outcome, price, at);
        if order.stage != stage_before {
            order.stage_seq = seq;
        }
        if order.stage == OrderStage::Done {
            let deadline = order.deadline;
            self.timers
                .remove(&(deadline, TimerKey::OrderDeadline(id.clone())));
        }
    }

    /// `Event::OrderEndRequested`: a cancel or the deadline; the order gives back
    /// what it took.
    pub(super) fn request_order_end(&mut self, id: &OrderId, ending: OrderEnding, at: TimestampMs) {
        let order = self.order_mut(id);
        order.request_end(ending, at);
        let deadline = order.deadline;
        self.timers
            .remove(&(deadline, TimerKey::OrderDeadline(id.clone())));
    }
}
