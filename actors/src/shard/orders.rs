//! Orders: the coordinator sends an order's outstanding steps (to its items'
//! and its accounts' shards) and takes their answers.

use super::{LineStepReply, LineStepRequest, ShardCore, ShardMessage, StepRequest};
use crate::domain::{Currency, OrderId};
use crate::event::Event;
use crate::model::{SagaId, StepOutcome, StepTag};
use crate::order::OrderStep;

impl ShardCore {
    pub(super) fn send_order_steps(&mut self, id: &OrderId) {
        let Some(order) = self.state.orders.get(id) else {
            return;
        };
        let steps = order.outstanding_steps();
        let stamp = order.stage_seq;
        let saga = SagaId::Order(id.clone());
        if steps.is_empty() {
            self.step_sent_at.remove(&saga);
            return;
        }
        self.step_sent_at.insert(saga.clone(), self.now);
        for step in steps {
            let (to, message) = match step {
                OrderStep::Account {
                    account,
                    currency,
                    kind,
                } => (
                    self.router.shard_for(account.as_str()),
                    ShardMessage::Step(StepRequest {
                        saga: saga.clone(),
                        account,
                        currency,
                        kind,
                        reply_to: self.id,
                        stamp,
                    }),
                ),
                OrderStep::Line { line, sku, kind } => (
                    self.router.shard_for(sku.as_str()),
                    ShardMessage::LineStep(LineStepRequest {
                        order: id.clone(),
                        line,
                        sku,
                        kind,
                        reply_to: self.id,
                        stamp,
                    }),
                ),
            };
            self.note_step_sent(to, stamp);
            self.send(to, message);
        }
    }

    pub(super) fn handle_line_step_reply(&mut self, reply: LineStepReply) {
        self.order_step_completed(reply.order, reply.tag, reply.outcome, reply.price);
    }

    pub(super) fn order_step_completed(
        &mut self,
        id: OrderId,
        tag: StepTag,
        outcome: StepOutcome,
        price: Option<(rust_decimal::Decimal, Currency)>,
    ) {
        let Some(order) = self.state.orders.get(&id) else {
            return;
        };
        if !order.expects(tag, outcome) {
            if order.awaits(tag) {
                tracing::error!(order = %id, ?tag, ?outcome, "an authorized order's step was refused; it will be resent");
            }
            return;
        }
        self.emit(Event::OrderStepCompleted {
            id,
            tag,
            outcome,
            price,
            at: self.now,
        });
    }
}
