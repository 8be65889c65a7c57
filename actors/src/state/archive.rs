//! Finished entities and operation records: queued for the archive when they
//! finish (an operation's record when it is written), gone from memory once it
//! has them, back when a command names one (see [`crate::archive`]).

use super::State;
use crate::archive::{ArchiveKey, Archived};
use crate::domain::{OrderId, ReservationId, Sku, TimestampMs};
use crate::event::Event;
use crate::model::{ReservationKey, ReservationStatus, Stage, StepKey, StepOutcome, StepTag};
use crate::order::OrderTerms;

/// Most entities in one round for the archive: a round is one transaction.
pub const ARCHIVE_ROUND_ENTITIES_MAX: usize = 16_384;

impl State {
    /// After each event: queues every entity the event finished, under the
    /// event's sequence number.
    pub(super) fn note_finished(&mut self, event: &Event) {
        match event {
            Event::PaymentCreated { id, at, .. }
            | Event::PaymentStepCompleted { id, at, .. }
            | Event::PaymentStepAppliedLocally { id, at, .. }
            | Event::PaymentRunLocally { id, at, .. } => {
                if self
                    .payments
                    .get(id)
                    .is_some_and(|payment| payment.stage == Stage::Done)
                {
                    // No event applies to a payment that is done, so this one
                    // finished just now: it cannot be queued already.
                    self.queue_new_finished(ArchiveKey::Payment(id.clone()), *at);
                }
            }
            Event::OrderRefusedLocally { id, at, .. }
            | Event::OrderStepCompleted { id, at, .. }
            | Event::OrderEndRequested { id, at, .. } => self.note_order_finished(id, *at),
            Event::OrderRunLocally { id, terms, at, .. }
            | Event::OrderRejectedLocally { id, terms, at, .. } => {
                self.note_lines_finished(id, terms, *at);
                self.note_order_finished(id, *at);
            }
            Event::ReservationClosed { sku, id, at, .. } => {
                self.note_reservation_finished(sku, id, *at)
            }
            // An operation's record is final as written.
            Event::OpRecorded { key, record, .. } => {
                self.queue_op(ArchiveKey::Op(key.clone()), record.at)
            }
            Event::StepApplied {
                key,
                outcome,
                at,
                origin,
                ..
            } => self.note_step_finished(key, *outcome, *at, origin.is_some()),
            // A stamped record never goes to the archive: it stays until its
            // sender's floor passes it (see `crate::model::StepOrigin`).
            Event::LineStepApplied {
                key,
                at,
                origin: None,
                ..
            } => self.queue_op(ArchiveKey::Step(key.clone()), *at),
            Event::LineStepApplied {
                origin: Some(_), ..
            } => {}
            // Nothing finishes: an account, an item or a record changed, a payment
            // or order started or asked for an end that takes further steps, or a
            // reservation was taken (its close is its own event).
            Event::AccountCreated { .. }
            | Event::BalanceChanged { .. }
            | Event::PaymentCaptureRequested { .. }
            | Event::PaymentReleaseRequested { .. }
            | Event::ItemCreated { .. }
            | Event::Restocked { .. }
            | Event::Reserved { .. }
            | Event::OrderCreated { .. }
            | Event::RecordsPruned { .. }
            | Event::EntitiesArchived { .. }
            | Event::StepFloorRaised { .. } => {}
            // Queued again by `recall`, under this event's number.
            Event::EntityRecalled { .. } => {}
        }
    }

    /// An unstamped step's record (one of a saga from before stamps) is final
    /// as written, except an active hold's: what its release or capture reads.
    /// A closing step finishes the hold's record too (a second closing step may
    /// queue it again, which only stores it twice). Stamped records never go to
    /// the archive (see `crate::model::StepOrigin`).
    fn note_step_finished(
        &mut self,
        key: &StepKey,
        outcome: StepOutcome,
        at: TimestampMs,
        stamped: bool,
    ) {
        if key.tag == StepTag::Hold && outcome == StepOutcome::Done {
            return;
        }
        if matches!(key.tag, StepTag::Release | StepTag::Capture) {
            let hold = StepKey {
                saga: key.saga.clone(),
                tag: StepTag::Hold,
            };
            if self.steps.get(&hold).is_some_and(|r| r.origin.is_none()) {
                self.queue_op(ArchiveKey::Step(hold), at);
            }
        }
        if !stamped {
            self.queue_op(ArchiveKey::Step(key.clone()), at);
        }
    }

    fn note_order_finished(&mut self, id: &OrderId, at: TimestampMs) {
        if self.orders.get(id).is_some_and(|order| order.is_final()) {
            self.queue_finished(ArchiveKey::Order(id.clone()), at);
        }
    }

    /// The reservations an order run on this shard took and closed in one event.
    fn note_lines_finished(&mut self, order: &OrderId, terms: &OrderTerms, at: TimestampMs) {
        for (line, order_line) in terms.lines.iter().enumerate() {
            let id = ReservationId::for_order_line(order, line as u16);
            self.note_reservation_finished(&order_line.sku, &id, at);
        }
    }

    fn note_reservation_finished(&mut self, sku: &Sku, id: &ReservationId, at: TimestampMs) {
        let key = ReservationKey {
            sku: sku.clone(),
            id: id.clone(),
        };
        if self
            .reservations
            .get(&key)
            .is_some_and(|reservation| reservation.status != ReservationStatus::Held)
        {
            self.queue_finished(ArchiveKey::Reservation(key), at);
        }
    }

    fn queue_finished(&mut self, key: ArchiveKey, at: TimestampMs) {
        if !self.finished.contains_key(&key) {
            self.queue_new_finished(key, at);
        }
    }

    /// Queues an entity known not to be queued.
    fn queue_new_finished(&mut self, key: ArchiveKey, at: TimestampMs) {
        self.finished.insert(key.clone(), (self.last_seq, at));
        self.finished_queue.push_back((self.last_seq, at, key));
    }

    /// Queues an operation's record. Only the queue has it: a record is queued
    /// when it is written or recalled, each of which finds it absent, and
    /// `finished` counts the finished entities among the open ones.
    fn queue_op(&mut self, key: ArchiveKey, at: TimestampMs) {
        self.finished_queue.push_back((self.last_seq, at, key));
    }

    /// What the archive may take now: the entities queued after event
    /// `after_seq`, up to the last event such that every entity queued up to it
    /// is durable (by event `durable_seq`) and finished by `finished_by`, and at
    /// most `ARCHIVE_ROUND_ENTITIES_MAX` of them. Returns that event's sequence
    /// number (`after_seq` when there is none) and the entities, oldest first.
    /// (Events are timed by a clock that never goes back, so what finished early
    /// enough is a prefix of the queue.)
    pub fn archivable(
        &self,
        after_seq: u64,
        durable_seq: u64,
        finished_by: TimestampMs,
    ) -> (u64, Vec<Archived>) {
        let mut through_seq = durable_seq;
        let mut taken: Vec<(u64, Archived)> = Vec::new();
        for (seq, at, key) in self.finished_queue.iter() {
            if *seq <= after_seq {
                continue;
            }
            let full = taken.len() >= ARCHIVE_ROUND_ENTITIES_MAX;
            if *seq > durable_seq || *at > finished_by || full {
                // The round ends before this entry's event.
                through_seq = through_seq.min(seq - 1);
                break;
            }
            if let Some(entity) = self.finished_entity(key) {
                taken.push((*seq, entity));
            }
        }
        // A round cut by its size within an event's entries leaves all of that
        // event's entries to the next round.
        taken.retain(|(seq, _)| *seq <= through_seq);
        let entities = taken.into_iter().map(|(_, entity)| entity).collect();
        (through_seq.max(after_seq), entities)
    }

    /// A queued entity as it is now (and will stay: it is final).
    fn finished_entity(&self, key: &ArchiveKey) -> Option<Archived> {
        match key {
            ArchiveKey::Payment(id) => self.payments.get(id).cloned().map(Archived::Payment),
            ArchiveKey::Order(id) => self.orders.get(id).cloned().map(Archived::Order),
            ArchiveKey::Reservation(key) => self
                .reservations
                .get(key)
                .cloned()
                .map(Archived::Reservation),
            ArchiveKey::Op(key) => self
                .ops
                .get(key)
                .cloned()
                .map(|record| Archived::Op(key.clone(), record)),
            ArchiveKey::Step(key) => self
                .steps
                .get(key)
                .cloned()
                .map(|record| Archived::Step(key.clone(), record)),
        }
    }

    /// `Event::EntitiesArchived`: every entity queued at or before `through_seq`
    /// leaves memory.
    pub(super) fn evict_archived(&mut self, through_seq: u64) {
        while self
            .finished_queue
            .front()
            .is_some_and(|(seq, _, _)| *seq <= through_seq)
        {
            let Some((_, _, key)) = self.finished_queue.pop_front() else {
                break;
            };
            self.finished.remove(&key);
            self.archived_keys.insert(key.filter_hash());
            match &key {
                ArchiveKey::Payment(id) => {
                    self.payments.remove(id);
                }
                ArchiveKey::Order(id) => {
                    self.orders.remove(id);
                }
                ArchiveKey::Reservation(key) => {
                    self.reservations.remove(key);
                }
                ArchiveKey::Op(key) => {
                    self.ops.remove(key);
                }
                ArchiveKey::Step(key) => {
                    self.steps.remove(key);
                }
            }
        }
    }

    /// `Event::EntityRecalled`: a finished entity comes back from the archive, and
    /// is queued to leave again.
    pub(super) fn recall(&mut self, entity: &Archived, at: TimestampMs) {
        let key = entity.key();
        match entity {
            Archived::Payment(payment) => self.payments.insert(payment.id.clone(), payment.clone()),
            Archived::Order(order) => self.orders.insert(order.id.clone(), order.clone()),
            Archived::Reservation(reservation) => {
                if let ArchiveKey::Reservation(key) = &key {
                    self.reservations.insert(key.clone(), reservation.clone());
                }
            }
            Archived::Op(op, record) => {
                self.ops.insert(op.clone(), record.clone());
                self.queue_op(key, at);
                return;
            }
            Archived::Step(step, record) => {
                self.steps.insert(step.clone(), record.clone());
                self.queue_op(key, at);
                return;
            }
        }
        self.queue_finished(key, at);
    }

    /// This state with `entities` (archived ones of this shard) put back, as if
    /// none had left: for checks that look at everything a shard ever finished.
    pub fn with_archived(&self, entities: impl IntoIterator<Item = Archived>) -> State {
        let mut state = self.clone();
        state.set_recording(false);
        for entity in entities {
            if !state.holds(&entity.key()) {
                state.recall(&entity, 0);
            }
        }
        state.finished = self.finished.clone();
        state.finished_queue = self.finished_queue.clone();
        state
    }

    /// Payments, orders and reservations in memory that are still open (every
    /// finished one in memory is queued in `finished`).
    pub fn open_entities(&self) -> usize {
        (self.payments.len() + self.orders.len() + self.reservations.len())
            .saturating_sub(self.finished.len())
    }

    /// Sets the memory of the filter of archived keys (see `crate::filter`).
    pub fn set_archived_filter_bytes(&mut self, bytes: u64) {
        self.archived_keys.set_layer_bytes(bytes);
    }

    /// Memory the filter of archived keys takes.
    pub fn archived_filter_bytes(&self) -> u64 {
        self.archived_keys.bytes()
    }

    /// A copy for a snapshot to encode: every table copied except the filter of
    /// archived keys, which the copy either shares whole (see `crate::filter`:
    /// copying it took tens of milliseconds of the shard's thread and its size
    /// again in memory) or holds as a delta, the hashes since the filter's base.
    /// Returns, for a full copy, how many hashes it holds since the base, which
    /// [`State::snapshot_written`] needs once it is durable.
    pub fn copy_for_snapshot(&mut self) -> (State, Option<usize>) {
        let filter = std::mem::take(&mut self.archived_keys);
        let mut copy = self.clone();
        // A snapshot at the base's own sequence number replaces the base (storage
        // keeps one per number), so it must be whole too.
        let delta = filter
            .delta()
            .filter(|delta| !filter.wants_full() && delta.delta_base() != Some(self.last_seq));
        let (copied, full) = match delta {
            Some(delta) => (delta, None),
            None => (filter.share(), Some(filter.appended_len())),
        };
        copy.archived_keys = copied;
        self.archived_keys = filter;
        (copy, full)
    }

    /// The snapshot of [`State::copy_for_snapshot`] at `seq` is durable: when it
    /// held the filter whole, later deltas name it as their base.
    pub fn snapshot_written(&mut self, seq: u64, full: Option<usize>) {
        if let Some(appended) = full {
            self.archived_keys.rebased_at(seq, appended);
        }
    }

    /// Recovery from a snapshot: a delta's filter takes its base's bits (from
    /// `base`, the state of the snapshot it names); a full one is the base of
    /// the deltas that follow.
    pub fn recovered_from(&mut self, seq: u64, base: Option<State>) -> Result<(), String> {
        match (self.archived_keys.delta_base(), base) {
            (Some(base_seq), Some(base)) if base.last_seq == base_seq => {
                self.archived_keys.rebase(base.archived_keys)
            }
            (Some(base_seq), Some(base)) => Err(format!(
                "its filter's base is the snapshot at {base_seq}, not the one at {}",
                base.last_seq
            )),
            (Some(base_seq), None) => Err(format!(
                "its filter's base, the snapshot at {base_seq}, is missing"
            )),
            (None, Some(_)) => Err("it holds its filter whole but came with a base".into()),
            (None, None) => {
                self.archived_keys.rebased_at(seq, 0);
                Ok(())
            }
        }
    }

    /// Whether an entity not in memory may be in the archive (false: it
    /// certainly is not, and a command naming it needs no lookup).
    pub fn may_be_archived(&self, key: &ArchiveKey) -> bool {
        !self.archived_keys.is_empty() && self.archived_keys.may_contain(key.filter_hash())
    }

    /// Whether the record of step `tag` of `saga`, not in memory, may be in the
    /// archive: `may_be_archived` without building the key.
    pub fn step_may_be_archived(&self, saga: &crate::model::SagaId, tag: StepTag) -> bool {
        !self.archived_keys.is_empty()
            && self
                .archived_keys
                .may_contain(crate::archive::step_filter_hash(saga, tag))
    }

    /// Whether an entity is in memory.
    pub fn holds(&self, key: &ArchiveKey) -> bool {
        match key {
            ArchiveKey::Payment(id) => self.payments.contains_key(id),
            ArchiveKey::Order(id) => self.orders.contains_key(id),
            ArchiveKey::Reservation(key) => self.reservations.contains_key(key),
            ArchiveKey::Op(key) => self.ops.contains_key(key),
            ArchiveKey::Step(key) => self.steps.contains_key(key),
        }
    }
}
