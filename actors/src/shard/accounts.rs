//! Accounts: an account owner's handling of a saga step from a coordinator.

use super::{ShardCore, ShardMessage, StepReply, StepRequest};
use crate::decide;
use crate::model::{SagaId, StepKind, StepOrigin, UNSTAMPED};
use crate::router::ShardId;

impl ShardCore {
    pub(super) fn handle_step(&mut self, request: StepRequest) {
        // Its sender has had its answer and will never need it again.
        if self.state.step_is_stale(request.reply_to, request.stamp) {
            return;
        }
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
            origin(request.reply_to, request.stamp),
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

/// A stamped step's origin; none for an unstamped one (a saga from before
/// stamps), whose record goes to the archive as such records did.
pub(super) fn origin(from: ShardId, stamp: u64) -> Option<StepOrigin> {
    (stamp != UNSTAMPED).then_some(StepOrigin { from, stamp })
}
