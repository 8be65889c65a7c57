//! Finished entities: queued for the archive when they finish, gone from memory
//! once it has them, back when a command names one (see [`crate::archive`]).

use super::State;
use crate::archive::{ArchiveKey, Archived};
use crate::domain::{OrderId, ReservationId, Sku};
use crate::event::Event;
use crate::model::{ReservationKey, ReservationStatus, Stage};
use crate::order::OrderTerms;

impl State {
    /// After each event: queues every entity the event finished, under the
    /// event's sequence number.
    pub(super) fn note_finished(&mut self, event: &Event) {
        match event {
            Event::PaymentCreated { id, .. }
            | Event::PaymentStepCompleted { id, .. }
            | Event::PaymentStepAppliedLocally { id, .. }
            | Event::PaymentRunLocally { id, .. } => {
                if self
                    .payments
                    .get(id)
                    .is_some_and(|payment| payment.stage == Stage::Done)
                {
                    self.queue_finished(ArchiveKey::Payment(id.clone()));
                }
            }
            Event::OrderRefusedLocally { id, .. }
            | Event::OrderStepCompleted { id, .. }
            | Event::OrderEndRequested { id, .. } => self.note_order_finished(id),
            Event::OrderRunLocally { id, terms, .. }
            | Event::OrderRejectedLocally { id, terms, .. } => {
                self.note_lines_finished(id, terms);
                self.note_order_finished(id);
            }
            Event::ReservationClosed { sku, id, .. } => self.note_reservation_finished(sku, id),
            // Nothing finishes: an account, an item or a record changed, a payment
            // or order started or asked for an end that takes further steps, or a
            // reservation was taken (its close is its own event).
            Event::AccountCreated { .. }
            | Event::BalanceChanged { .. }
            | Event::OpRecorded { .. }
            | Event::StepApplied { .. }
            | Event::PaymentCaptureRequested { .. }
            | Event::PaymentReleaseRequested { .. }
            | Event::ItemCreated { .. }
            | Event::Restocked { .. }
            | Event::Reserved { .. }
            | Event::OrderCreated { .. }
            | Event::LineStepApplied { .. }
            | Event::RecordsPruned { .. }
            | Event::EntitiesArchived { .. } => {}
            // Queued again by `recall`, under this event's number.
            Event::EntityRecalled { .. } => {}
        }
    }

    fn note_order_finished(&mut self, id: &OrderId) {
        if self.orders.get(id).is_some_and(|order| order.is_final()) {
            self.queue_finished(ArchiveKey::Order(id.clone()));
        }
    }

    /// The reservations an order run on this shard took and closed in one event.
    fn note_lines_finished(&mut self, order: &OrderId, terms: &OrderTerms) {
        for (line, order_line) in terms.lines.iter().enumerate() {
            let id = ReservationId::for_order_line(order, line as u16);
            self.note_reservation_finished(&order_line.sku, &id);
        }
    }

    fn note_reservation_finished(&mut self, sku: &Sku, id: &ReservationId) {
        let key = ReservationKey {
            sku: sku.clone(),
            id: id.clone(),
        };
        if self
            .reservations
            .get(&key)
            .is_some_and(|reservation| reservation.status != ReservationStatus::Held)
        {
            self.queue_finished(ArchiveKey::Reservation(key));
        }
    }

    fn queue_finished(&mut self, key: ArchiveKey) {
        if !self.finished.contains_key(&key) {
            self.finished.insert(key, self.last_seq);
        }
    }

    /// The finished entities the archive may take once event `durable_seq` is
    /// durable, among those queued after event `after_seq`, oldest first.
    pub fn archivable(&self, after_seq: u64, durable_seq: u64) -> Vec<(u64, Archived)> {
        let mut entries: Vec<(u64, Archived)> = self
            .finished
            .iter()
            .filter(|(_, seq)| (after_seq + 1..=durable_seq).contains(*seq))
            .filter_map(|(key, seq)| self.finished_entity(key).map(|entity| (*seq, entity)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key().cmp(&b.1.key())));
        entries
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
        }
    }

    /// `Event::EntitiesArchived`: every entity queued at or before `through_seq`
    /// leaves memory.
    pub(super) fn evict_archived(&mut self, through_seq: u64) {
        let mut keys: Vec<ArchiveKey> = self
            .finished
            .iter()
            .filter(|(_, seq)| **seq <= through_seq)
            .map(|(key, _)| key.clone())
            .collect();
        // One order, so that the undo log (and a replay) is the same every time.
        keys.sort_unstable();
        for key in keys {
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
            }
        }
    }

    /// `Event::EntityRecalled`: a finished entity comes back from the archive, and
    /// is queued to leave again.
    pub(super) fn recall(&mut self, entity: &Archived) {
        let key = entity.key();
        match entity {
            Archived::Payment(payment) => self.payments.insert(payment.id.clone(), payment.clone()),
            Archived::Order(order) => self.orders.insert(order.id.clone(), order.clone()),
            Archived::Reservation(reservation) => {
                if let ArchiveKey::Reservation(key) = &key {
                    self.reservations.insert(key.clone(), reservation.clone());
                }
            }
        }
        self.queue_finished(key);
    }

    /// This state with `entities` (archived ones of this shard) put back, as if
    /// none had left: for checks that look at everything a shard ever finished.
    pub fn with_archived(&self, entities: impl IntoIterator<Item = Archived>) -> State {
        let mut state = self.clone();
        state.set_recording(false);
        for entity in entities {
            if !state.holds(&entity.key()) {
                state.recall(&entity);
            }
        }
        state.finished = self.finished.clone();
        state
    }

    /// Whether an entity not in memory may be in the archive (false: it
    /// certainly is not, and a command naming it needs no lookup).
    pub fn may_be_archived(&self, key: &ArchiveKey) -> bool {
        self.archived_keys.may_contain(key.filter_hash())
    }

    /// Whether an entity is in memory.
    pub fn holds(&self, key: &ArchiveKey) -> bool {
        match key {
            ArchiveKey::Payment(id) => self.payments.contains_key(id),
            ArchiveKey::Order(id) => self.orders.contains_key(id),
            ArchiveKey::Reservation(key) => self.reservations.contains_key(key),
        }
    }
}
