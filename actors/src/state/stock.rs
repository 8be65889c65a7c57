//! Stock: items, restocks, reservations, and the item owner's side of an order
//! line's step.

use super::State;
use crate::domain::{Currency, ReservationId, Sku, TimestampMs};
use crate::model::{
    Item, Reservation, ReservationKey, ReservationStatus, StepKey, StepOrigin, StepOutcome,
    StepRecord, TimerKey,
};
use rust_decimal::Decimal;

impl State {
    /// `Event::ItemCreated`.
    pub(super) fn create_item(
        &mut self,
        sku: &Sku,
        price: Decimal,
        currency: Currency,
        stock: u64,
        at: TimestampMs,
    ) {
        self.items.insert(
            sku.clone(),
            Item {
                sku: sku.clone(),
                price,
                currency,
                initial_stock: stock,
                on_hand: stock,
                reserved: 0,
                version: 0,
                created_at: at,
            },
        );
    }

    /// `Event::Restocked`.
    pub(super) fn restock(&mut self, sku: &Sku, quantity: u64) {
        let item = self.item_mut(sku);
        item.on_hand += quantity;
        item.version += 1;
    }

    /// `Event::Reserved`: the units are held until the reservation is closed or
    /// expires at `expires_at`.
    pub(super) fn reserve(
        &mut self,
        sku: &Sku,
        id: &ReservationId,
        quantity: u32,
        ttl_ms: u64,
        expires_at: TimestampMs,
        at: TimestampMs,
    ) {
        let item = self.item_mut(sku);
        item.reserved += u64::from(quantity);
        item.version += 1;
        let key = ReservationKey {
            sku: sku.clone(),
            id: id.clone(),
        };
        self.reservations.insert(
            key.clone(),
            Reservation {
                sku: sku.clone(),
                id: id.clone(),
                quantity,
                ttl_ms,
                status: ReservationStatus::Held,
                expires_at,
                created_at: at,
            },
        );
        self.timers.insert((expires_at, TimerKey::Reservation(key)));
    }

    /// `Event::ReservationClosed`: committed units leave the item, released or
    /// expired ones go back to it.
    pub(super) fn close_reservation(
        &mut self,
        sku: &Sku,
        id: &ReservationId,
        status: ReservationStatus,
    ) {
        let key = ReservationKey {
            sku: sku.clone(),
            id: id.clone(),
        };
        let reservation = self
            .reservations
            .get_mut(&key)
            .expect("journal names an unknown reservation");
        assert_eq!(reservation.status, ReservationStatus::Held);
        reservation.status = status;
        let quantity = u64::from(reservation.quantity);
        let expires_at = reservation.expires_at;
        let item = self.item_mut(sku);
        item.reserved -= quantity;
        if status == ReservationStatus::Committed {
            item.on_hand -= quantity;
        }
        item.version += 1;
        self.timers
            .remove(&(expires_at, TimerKey::Reservation(key)));
    }

    /// `Event::LineStepApplied`: the record of an order line's step on this
    /// shard's item (its effect on the stock is a `Reserved` or
    /// `ReservationClosed` of its own).
    pub(super) fn apply_line_step(
        &mut self,
        key: &StepKey,
        outcome: StepOutcome,
        at: TimestampMs,
        origin: Option<StepOrigin>,
    ) {
        self.steps.insert(
            key.clone(),
            StepRecord {
                account: None,
                outcome,
                amount: Decimal::ZERO,
                at,
                origin,
            },
        );
        // No timer: a stamped record goes once its sender's floor passes it, an
        // unstamped one to the archive (see `State::note_finished`).
        if let Some(origin) = origin {
            self.file_step_record(origin, key.clone());
        }
    }
}
