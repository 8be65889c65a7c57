//! A batch: what the shard hands its owner for the journal, and what happens
//! once the journal has answered (commit, or roll back).

use super::{ShardCore, Token};
use crate::command::Reply;
use crate::event::Event;
use crate::model::SagaId;
use crate::notice::Notice;
use crate::state::UndoMark;

use super::messages::Envelope;

/// The largest batch (in events) whose buffers a shard keeps for the next (see
/// `ShardCore::recycle`): 32 MB at most (128-byte events), and far above a busy shard's
/// batches (a few thousand to a few tens of thousands of events).
pub const SPARE_EVENTS_CAPACITY_MAX: usize = 1 << 18;

/// What one batch produced. Nothing in it may leave the shard before `events` are
/// durable.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub replies: Vec<(Token, Reply)>,
    pub messages: Vec<Envelope>,
    /// What feeds hear of this batch, in event order.
    pub notices: Vec<Notice>,
    /// Clients that started waiting on a saga in this batch; if the batch is rolled
    /// back they must be told to retry.
    pub new_waiters: Vec<Token>,
    /// Where the state's undo logs ended when the batch was taken.
    pub undo_mark: UndoMark,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.replies.is_empty() && self.messages.is_empty()
    }
}

impl ShardCore {
    /// Takes what the current batch produced, for the owner to journal. Inputs
    /// after this open the next batch, which may be handled while this one is
    /// written (its changes stay undoable until `commit_batch`).
    pub fn take_batch(&mut self) -> Batch {
        let next = std::mem::take(&mut self.spare);
        let mut batch = std::mem::replace(&mut self.batch, next);
        batch.undo_mark = self.state.undo_mark();
        self.batch_open = false;
        batch
    }

    /// Takes back the buffers of a batch that has been written and released, for
    /// a later batch. A busy shard's batches hold thousands of events; growing
    /// fresh buffers for each one by doubling cost a fifth of the shard's thread in
    /// a flash sale, most of it the kernel zeroing new pages. A batch whose event
    /// buffer is above `SPARE_EVENTS_CAPACITY_MAX` is let go rather than kept.
    pub fn recycle(&mut self, mut batch: Batch) {
        let capacity = batch.events.capacity();
        if capacity <= self.spare.events.capacity() || capacity > SPARE_EVENTS_CAPACITY_MAX {
            return;
        }
        batch.events.clear();
        batch.replies.clear();
        batch.messages.clear();
        batch.notices.clear();
        batch.new_waiters.clear();
        self.spare = batch;
    }

    /// `batch` (the oldest taken and not yet committed) is durable: forget its part
    /// of the undo log; batches taken or opened after it stay undoable.
    pub fn commit_batch(&mut self, batch: &Batch) {
        self.state.commit_through(batch.undo_mark);
        if !self.batch_open && self.state.undo_is_empty() {
            self.state.set_recording(false);
        }
    }

    /// Everything handled so far is durable: forget the undo log.
    pub fn commit(&mut self) {
        self.state.commit();
        self.state.set_recording(false);
        self.batch_open = false;
    }

    /// The batch's journal write failed: go back to the durable state, undoing
    /// every batch after it too (the owner takes the open one and fails it along).
    /// Clients that started waiting on sagas in `batch` stop waiting.
    pub fn rollback(&mut self, durable_seq: u64, batch: &Batch) {
        self.state.rollback(durable_seq);
        self.state.set_recording(false);
        self.batch_open = false;
        for waiters in self.waiters.values_mut() {
            waiters.retain(|w| !batch.new_waiters.contains(&w.token));
        }
        self.waiters.retain(|_, waiters| !waiters.is_empty());
        // What floors were worked out from goes too: a step of an undone batch
        // never left, and its stamp will be given again. Floors start over from
        // the durable state, as after a restart.
        self.floor_bases.clear();
        self.floors_sent.clear();
        self.floors_due_at = 0;
        // Outstanding steps of payments that no longer exist are dropped; others are
        // resent on the next tick.
        let state = &self.state;
        self.step_sent_at.retain(|saga, _| match saga {
            SagaId::Payment(id) => state.payments.contains_key(id),
            SagaId::Order(id) => state.orders.contains_key(id),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{Router, ShardId};
    use crate::shard::ShardLimits;
    use crate::state::State;

    fn core() -> ShardCore {
        ShardCore::new(
            ShardId(0),
            Router::new(1),
            ShardLimits::default(),
            State::new(0),
        )
    }

    #[test]
    fn a_written_batchs_buffers_are_reused_by_a_later_batch() {
        let mut core = core();
        let written = |events: usize| Batch {
            events: Vec::with_capacity(events),
            notices: Vec::with_capacity(events),
            ..Batch::default()
        };
        core.take_batch();
        // The batch now open started before the buffers came back; the next gets
        // them, emptied.
        core.recycle(written(4_096));
        assert_eq!(core.take_batch().events.capacity(), 0);
        let reused = core.take_batch();
        assert!(reused.events.capacity() >= 4_096 && reused.notices.capacity() >= 4_096);
        assert!(reused.events.is_empty() && reused.notices.is_empty());
        assert_eq!(
            core.take_batch().events.capacity(),
            0,
            "one spare at a time"
        );
        core.recycle(written(SPARE_EVENTS_CAPACITY_MAX + 1));
        core.take_batch();
        assert_eq!(core.take_batch().events.capacity(), 0, "too big to keep");
    }
}
