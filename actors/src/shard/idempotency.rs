//! Idempotency: an operation's outcome is recorded in the same batch as its
//! effect, under its key, with the fingerprint of its body.

use super::ShardCore;
use crate::command::Command;
use crate::decide;
use crate::event::Event;
use crate::model::{OpOutcome, OpRecord};

impl ShardCore {
    pub(super) fn record_op(&mut self, command: &Command, outcome: OpOutcome) {
        if let Some(key) = decide::op_key(command) {
            self.emit(Event::OpRecorded {
                key,
                record: OpRecord {
                    fingerprint: decide::fingerprint(command),
                    outcome,
                    at: self.now,
                },
                expires_at: self.now.saturating_add(self.limits.retention_ms),
            });
        }
    }
}
