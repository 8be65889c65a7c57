//! Timers: on each tick, holds and reservations expire, orders pass their
//! deadline, old records are pruned, and overdue steps are sent again.

use super::ShardCore;
use crate::domain::TimestampMs;
use crate::event::Event;
use crate::model::{Ending, ReservationStatus, SagaId, Stage, TimerKey};
use crate::order::OrderEnding;

impl ShardCore {
    /// Expires holds and reservations, prunes old records, and resends steps whose
    /// reply is overdue.
    pub fn tick(&mut self) {
        self.open_batch();
        let now = self.now;
        let due: Vec<(TimestampMs, TimerKey)> = self
            .state
            .timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .take(self.limits.expirations_per_tick_max)
            .cloned()
            .collect();
        let (mut ops, mut steps) = (Vec::new(), Vec::new());
        for (deadline, key) in due {
            match key {
                TimerKey::PaymentHold(id) => {
                    let authorized = self.state.payments.get(&id).is_some_and(|payment| {
                        payment.stage == Stage::Authorized
                            && payment.hold_expires_at == Some(deadline)
                    });
                    if authorized {
                        self.emit(Event::PaymentReleaseRequested {
                            id,
                            ending: Ending::Expired,
                            at: now,
                        });
                    }
                }
                TimerKey::Reservation(key) => {
                    let held = self.state.reservations.get(&key).is_some_and(|r| {
                        r.status == ReservationStatus::Held && r.expires_at == deadline
                    });
                    if held {
                        self.emit(Event::ReservationClosed {
                            sku: key.sku,
                            id: key.id,
                            status: ReservationStatus::Expired,
                            at: now,
                        });
                    }
                }
                TimerKey::Op(key) => ops.push((deadline, key)),
                TimerKey::Step(key) => steps.push((deadline, key)),
                TimerKey::OrderDeadline(id) => {
                    if self.state.orders.get(&id).is_some_and(|o| o.can_end()) {
                        self.emit(Event::OrderEndRequested {
                            id,
                            ending: OrderEnding::Expired,
                            at: now,
                        });
                    }
                }
            }
        }
        if !ops.is_empty() || !steps.is_empty() {
            self.emit(Event::RecordsPruned { ops, steps });
        }
        let overdue: Vec<SagaId> = self
            .step_sent_at
            .iter()
            .filter(|(_, sent_at)| now.saturating_sub(**sent_at) >= self.limits.step_resend_ms)
            .map(|(saga, _)| saga.clone())
            .collect();
        for saga in overdue {
            self.send_outstanding_step(&saga);
        }
        self.send_floors();
        self.drain_local();
        self.answer_overdue_waiters();
    }
}
