//! Stock: an item owner's handling of an order line's step from a coordinator.

use super::{LineStepReply, LineStepRequest, ShardCore, ShardMessage};
use crate::decide;

impl ShardCore {
    pub(super) fn handle_line_step(&mut self, request: LineStepRequest) {
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
