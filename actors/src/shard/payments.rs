//! Payments: the coordinator sends a payment's outstanding step and takes its
//! answer.

use super::{ShardCore, ShardMessage, StepReply, StepRequest};
use crate::domain::PaymentId;
use crate::event::Event;
use crate::model::SagaId;

impl ShardCore {
    pub(super) fn send_payment_step(&mut self, id: &PaymentId) {
        let saga = SagaId::Payment(id.clone());
        let Some(payment) = self.state.payments.get(id) else {
            return;
        };
        match payment.outstanding_step() {
            Some((account, kind)) => {
                let request = StepRequest {
                    saga: saga.clone(),
                    account: account.clone(),
                    currency: payment.terms.currency,
                    kind,
                    reply_to: self.id,
                    stamp: payment.stage_seq,
                };
                let to = self.router.shard_for(account.as_str());
                self.note_step_sent(to, request.stamp);
                self.step_sent_at.insert(saga, self.now);
                self.send(to, ShardMessage::Step(request));
            }
            None => {
                self.step_sent_at.remove(&saga);
            }
        }
    }

    pub(super) fn handle_step_reply(&mut self, reply: StepReply) {
        let id = match reply.saga {
            SagaId::Payment(id) => id,
            SagaId::Order(id) => {
                return self.order_step_completed(id, reply.tag, reply.outcome, None)
            }
        };
        let Some(payment) = self.state.payments.get(&id) else {
            return;
        };
        // A reply that does not match the outstanding step is a duplicate or a
        // late answer to an earlier send; the saga has moved on.
        let expected = payment.outstanding_step().map(|(_, kind)| kind.tag());
        if expected != Some(reply.tag) {
            return;
        }
        self.emit(Event::PaymentStepCompleted {
            id,
            tag: reply.tag,
            outcome: reply.outcome,
            at: self.now,
        });
    }
}
