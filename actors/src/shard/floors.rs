//! Step floors: how a coordinator lets participants forget the records of its
//! saga steps, and how a participant tells a late duplicate from a new step,
//! whatever the delay (see [`crate::model::StepOrigin`] and docs/ARCHITECTURE.md,
//! "Saga steps apply once").
//!
//! Every step carries a stamp: the sequence number of the coordinator's event
//! that made it outstanding. A coordinator's floor for a shard is the lowest
//! stamp of its steps to that shard still unanswered, or, when none is, one past
//! the highest stamp it sent there (one past its last event, for a core that has
//! just started: it cannot know what it sent before). Stamps of later steps are
//! higher, and an answered step is never sent again, so the floor never falls and
//! everything stamped below it is done for good. The floor travels in a batch like
//! any message: it leaves only once the events it was computed from are durable.
//! A floor that rose goes out within [`STEP_FLOOR_EVERY_MS`]; every floor goes
//! out again every `step_resend_ms`, as unanswered steps do, since a floor can be
//! lost like any message. A participant journals a floor only when it passes
//! one of its records, so idle shards write nothing.

use super::{ShardCore, ShardMessage, StepFloor};
use crate::event::Event;
use crate::model::SagaId;
use crate::order::OrderStep;
use crate::router::ShardId;

/// How often a coordinator works out its floors and sends those that rose. The
/// records a participant holds are those of the steps answered in about this
/// long, plus those still unanswered.
pub const STEP_FLOOR_EVERY_MS: u64 = 100;

impl ShardCore {
    /// On a tick, at most every [`STEP_FLOOR_EVERY_MS`]: each shard's floor, to
    /// every shard whose floor rose since it was last sent (this one included).
    /// A coordinator that restarted sends every floor once, since a participant
    /// may hold records of its steps from before.
    pub(super) fn send_floors(&mut self) {
        if self.now < self.floors_due_at {
            return;
        }
        self.floors_due_at = self.now.saturating_add(STEP_FLOOR_EVERY_MS);
        let shards = self.router.shards() as usize;
        if self.floor_bases.is_empty() {
            self.floor_bases = vec![self.state.last_seq + 1; shards];
        }
        let mut floors = self.floor_bases.clone();
        for saga in self.step_sent_at.keys() {
            for (to, stamp) in self.outstanding_stamps(saga) {
                let floor = &mut floors[to.0 as usize];
                *floor = (*floor).min(stamp);
            }
        }
        self.floors_sent.resize(shards, 0);
        let resend_all = self.now >= self.floors_resend_at;
        if resend_all {
            self.floors_resend_at = self.now.saturating_add(self.limits.step_resend_ms);
        }
        for (to, floor) in floors.into_iter().enumerate() {
            if floor > self.floors_sent[to] || resend_all {
                self.floors_sent[to] = floor;
                let from = self.id;
                self.send(
                    ShardId(to as u32),
                    ShardMessage::StepFloor(StepFloor { from, floor }),
                );
            }
        }
    }

    /// A step stamped `stamp` went to `to`: once answered, the floor there may
    /// pass it. (Before the first floors, the start's base covers it.)
    pub(super) fn note_step_sent(&mut self, to: ShardId, stamp: u64) {
        if let Some(base) = self.floor_bases.get_mut(to.0 as usize) {
            *base = (*base).max(stamp.saturating_add(1));
        }
    }

    /// Where `saga`'s unanswered steps go, each with its stamp.
    fn outstanding_stamps(&self, saga: &SagaId) -> Vec<(ShardId, u64)> {
        match saga {
            SagaId::Payment(id) => self.state.payments.get(id).map_or(Vec::new(), |payment| {
                payment
                    .outstanding_step()
                    .map(|(account, _)| {
                        (self.router.shard_for(account.as_str()), payment.stage_seq)
                    })
                    .into_iter()
                    .collect()
            }),
            SagaId::Order(id) => self.state.orders.get(id).map_or(Vec::new(), |order| {
                order
                    .outstanding_steps()
                    .iter()
                    .map(|step| {
                        let to = match step {
                            OrderStep::Account { account, .. } => {
                                self.router.shard_for(account.as_str())
                            }
                            OrderStep::Line { sku, .. } => self.router.shard_for(sku.as_str()),
                        };
                        (to, order.stage_seq)
                    })
                    .collect()
            }),
        }
    }

    /// A coordinator's floor: journaled when it passes a record, which then
    /// goes, and below which a late duplicate is dropped from then on, after a
    /// restart too. A floor that passes no record changes nothing worth a
    /// write: every step from `from` that was applied here and not yet passed
    /// by a journaled floor still has its record (stamped records go only by a
    /// floor), so a copy of it is answered from the record. So idle shards
    /// write nothing.
    pub(super) fn handle_step_floor(&mut self, floor: StepFloor) {
        if self
            .state
            .step_floor_passes_records(floor.from, floor.floor)
        {
            self.emit(Event::StepFloorRaised {
                from: floor.from,
                floor: floor.floor,
            });
        }
    }
}
