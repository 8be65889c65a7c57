//! Idempotency: the records of operations, and the pruning of operation and
//! step records once their retention is over.

use super::State;
use crate::domain::TimestampMs;
use crate::model::{OpKey, OpRecord, StepKey, StepOrigin, TimerKey, UNSTAMPED};
use crate::router::ShardId;

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

    /// Files a stamped step record to go once `origin.from`'s floor passes
    /// `origin.stamp`.
    pub(super) fn file_step_record(&mut self, origin: StepOrigin, key: StepKey) {
        self.step_stamps
            .insert((origin.from, origin.stamp, Some(key)));
    }

    /// The highest floor coordinator `from` has sent this shard (0: none yet).
    pub fn step_floor(&self, from: ShardId) -> u64 {
        self.step_floors.get(&from).copied().unwrap_or(0)
    }

    /// Whether a step stamped `stamp` by `from` is a late duplicate: its sender
    /// has had its answer, durably, and will never need it again (applying it
    /// would apply it twice). An unstamped step never is.
    pub fn step_is_stale(&self, from: ShardId, stamp: u64) -> bool {
        stamp != UNSTAMPED && stamp < self.step_floor(from)
    }

    /// Whether `floor` from `from` is above the floor heard so far and passes
    /// at least one record that can go.
    pub fn step_floor_passes_records(&self, from: ShardId, floor: u64) -> bool {
        floor > self.step_floor(from)
            && self
                .step_stamps
                .range((from, 0, None)..(from, floor, None))
                .next()
                .is_some()
    }

    /// `Event::StepFloorRaised`: the records of `from`'s steps stamped below
    /// `floor` go.
    pub(super) fn raise_step_floor(&mut self, from: ShardId, floor: u64) {
        if floor <= self.step_floor(from) {
            return;
        }
        self.step_floors.insert(from, floor);
        let passed: Vec<(ShardId, u64, Option<StepKey>)> = self
            .step_stamps
            .range((from, 0, None)..(from, floor, None))
            .cloned()
            .collect();
        for entry in passed {
            if let (_, _, Some(key)) = &entry {
                self.steps.remove(key);
            }
            self.step_stamps.remove(&entry);
        }
    }
}
