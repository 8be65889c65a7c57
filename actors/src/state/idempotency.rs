//! Idempotency: the records of operations, and the pruning of operation and
//! step records once their retention is over.

use super::State;
use crate::domain::TimestampMs;
use crate::model::{OpKey, OpRecord, StepKey, TimerKey};

impl State {
    /// `Event::OpRecorded`: an operation's outcome. It needs no timer: like a
    /// finished entity it goes to the archive (which keeps it for the retention)
    /// once it has been in memory for the finished-entity window. (Journals and
    /// snapshots written before the archive took records have timers for them,
    /// which still prune them.)
    pub(super) fn record_op(&mut self, key: &OpKey, record: &OpRecord) {
        self.ops.insert(key.clone(), record.clone());
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
