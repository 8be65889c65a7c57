//! Accounts: an account owner's handling of a saga step from a coordinator.

use super::{ShardCore, ShardMessage, StepReply, StepRequest};
use crate::decide;
use crate::model::{SagaId, StepKind};

impl ShardCore {
    pub(super) fn handle_step(&mut self, request: StepRequest) {
        let Some(request) = self.park_step(request) else {
            return;
        };
        if request.reply_to == self.id {
            if let (
                SagaId::Payment(id),
                StepKind::Debit { .. } | StepKind::Credit { .. } | StepKind::Refund { .. },
            ) = (&request.saga, request.kind)
            {
                let id = id.clone();
                return self.apply_local_payment_step(id, request);
            }
        }
        let (events, outcome) = decide::decide_step(
            &self.state,
            &request.saga,
            &request.account,
            request.currency,
            request.kind,
            self.now,
            self.limits.retention_ms,
        );
        for event in events {
            self.emit(event);
        }
        let reply = StepReply {
            saga: request.saga,
            tag: request.kind.tag(),
            outcome,
        };
        self.send(request.reply_to, ShardMessage::StepReply(reply));
    }
}
