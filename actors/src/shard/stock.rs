//! Stock: an item owner's handling of an order line's step from a coordinator.

use super::{LineStepReply, LineStepRequest, ShardCore, ShardMessage};
use crate::decide;

impl ShardCore {
    pub(super) fn handle_line_step(&mut self, request: LineStepRequest) {
        // Its sender has had its answer and will never need it again.
        if self.state.step_is_stale(request.reply_to, request.stamp) {
            return;
        }
        let Some(request) = self.park_line_step(request) else {
            return;
        };
        let (events, outcome) = decide::decide_line_step(
            &self.state,
            &request.order,
            request.line,
            &request.sku,
            request.kind,
            self.now,
            self.limits.retention_ms,
            super::accounts::origin(request.reply_to, request.stamp),
        );
        for event in events {
            self.emit(event);
        }
        let reply = LineStepReply {
            order: request.order,
            tag: request.kind.tag(request.line),
            outcome,
            price: decide::item_price(&self.state, &request.sku),
        };
        self.send(request.reply_to, ShardMessage::LineStepReply(reply));
    }
}
