//! Idempotency: the records of operations, and the pruning of operation and
//! step records once their retention is over.

use super::State;
use crate::domain::TimestampMs;
use crate::model::{OpKey, OpRecord, StepKey, TimerKey};

impl State {
    /// `Event::OpRecorded`: an operation's outcome, kept until `expires_at`.
    pub(super) fn record_op(&mut self, key: &OpKey, record: &OpRecord, expires_at: TimestampMs) {
        self.ops.insert(key.clone(), record.clone());
        self.timers.insert((expires_at, TimerKey::Op(key.clone())));
    }

    /// `Event::RecordsPruned`: operation and step records whose time is up.
    pub(super) fn prune_records(
        &mut self,
        ops: &[(TimestampMs, OpKey)],
        steps: &[(TimestampMs, StepKey)],
    ) {
        for (deadline, key) in ops {
            self.ops.remove(key);
            self.timers.remove(&(*deadline, TimerKey::Op(key.clone())));
        }
        for (deadline, key) in steps {
            self.steps.remove(key);
            self.timers
                .remove(&(*deadline, TimerKey::Step(key.clone())));
        }
    }
}
