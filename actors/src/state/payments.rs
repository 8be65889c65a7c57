//! Payments: a payment's progress through its saga, on its coordinator's shard.

use super::State;
use crate::domain::{PaymentId, TimestampMs};
use crate::model::{
    Ending, FirstOutcome, Payment, PaymentStatus, PaymentTerms, Stage, StepOutcome, StepTag,
    TimerKey,
};
use crate::rejection::Rejection;
use rust_decimal::Decimal;
use std::sync::Arc;

impl State {
    /// `Event::PaymentCreated`.
    pub(super) fn create_payment(
        &mut self,
        id: &PaymentId,
        terms: &PaymentTerms,
        rejected: Option<Rejection>,
        at: TimestampMs,
    ) {
        let mut payment = Payment {
            id: id.clone(),
            terms: terms.clone(),
            status: PaymentStatus::Pending,
            code: None,
            stage: if terms.capture {
                Stage::Debit
            } else {
                Stage::Hold
            },
            captured_amount: Decimal::ZERO,
            hold_expires_at: None,
            first: None,
            created_at: at,
            updated_at: at,
            stage_seq: self.last_seq,
        };
        if let Some(code) = rejected {
            finish(&mut payment, PaymentStatus::Rejected, Some(code), at);
        }
        self.payments.insert(id.clone(), Arc::new(payment));
    }

    /// `Event::PaymentStepCompleted`: a step's answer moves the payment's stage.
    pub(super) fn complete_step(
        &mut self,
        id: &PaymentId,
        tag: StepTag,
        outcome: StepOutcome,
        at: u64,
    ) {
        let seq = self.last_seq;
        let payment = self.payment_mut(id);
        payment.updated_at = at;
        let stage_before = payment.stage;
        let amount = payment.terms.amount;
        let hold_timeout_ms = payment.terms.hold_timeout_ms;
        let mut hold_timer = None;
        match (payment.stage, outcome) {
            (Stage::Debit, StepOutcome::Done) => payment.stage = Stage::Credit,
            (Stage::Credit, StepOutcome::Done) => {
                payment.captured_amount = amount;
                finish(payment, PaymentStatus::Settled, None, at);
            }
            (Stage::Credit, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Refund { amount, code };
            }
            (Stage::CaptureCredit { amount }, StepOutcome::Done) => {
                payment.captured_amount = amount;
                finish(payment, PaymentStatus::Captured, None, at);
            }
            // Accounts never disappear or change currency, so a credit after a
            // successful validation cannot fail; if it ever does, the money goes
            // back to the payer rather than vanish.
            (Stage::CaptureCredit { amount }, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Refund { amount, code };
            }
            (Stage::Refund { code, .. }, StepOutcome::Done) => {
                finish(payment, PaymentStatus::Rejected, Some(code), at);
            }
            (Stage::Hold, StepOutcome::Done) => payment.stage = Stage::Validate,
            (Stage::Validate, StepOutcome::Done) => {
                let expires_at = at.saturating_add(hold_timeout_ms);
                payment.stage = Stage::Authorized;
                payment.status = PaymentStatus::Authorized;
                payment.hold_expires_at = Some(expires_at);
                set_first(payment, at);
                hold_timer = Some(expires_at);
            }
            (Stage::Validate, StepOutcome::Rejected(code)) => {
                payment.stage = Stage::Release(Ending::Rejected(code));
            }
            (Stage::Release(ending), StepOutcome::Done) => {
                let (status, code) = match ending {
                    Ending::Rejected(code) => (PaymentStatus::Rejected, Some(code)),
                    Ending::Voided => (PaymentStatus::Voided, None),
                    Ending::Expired => (PaymentStatus::Expired, None),
                };
                finish(payment, status, code, at);
            }
            (Stage::Capture { amount }, StepOutcome::Done) => {
                payment.stage = Stage::CaptureCredit { amount };
            }
            // A capture is refused only when the hold is already gone, which only
            // this coordinator can cause. Make sure of it and end the payment.
            (Stage::Capture { .. }, StepOutcome::Rejected(_)) => {
                payment.stage = Stage::Release(Ending::Expired);
            }
            (Stage::Debit | Stage::Hold, StepOutcome::Rejected(code)) => {
                finish(payment, PaymentStatus::Rejected, Some(code), at);
            }
            (stage, outcome) => {
                // `decide` only records replies that match the stage.
                panic!("step {tag:?} {outcome:?} does not fit payment {id} at {stage:?}")
            }
        }
        if payment.stage != stage_before {
            payment.stage_seq = seq;
        }
        if let Some(expires_at) = hold_timer {
            self.timers
                .insert((expires_at, TimerKey::PaymentHold(id.clone())));
        }
    }

    /// `Event::PaymentCaptureRequested`: the hold is to be captured.
    pub(super) fn request_capture(&mut self, id: &PaymentId, amount: Decimal, at: TimestampMs) {
        let seq = self.last_seq;
        let payment = self.payment_mut(id);
        payment.stage = Stage::Capture { amount };
        payment.stage_seq = seq;
        payment.updated_at = at;
        let expires_at = payment.hold_expires_at.take();
        self.remove_hold_timer(id, expires_at);
    }

    /// `Event::PaymentReleaseRequested`: a void, or the hold's expiry.
    pub(super) fn request_release(&mut self, id: &PaymentId, ending: Ending, at: TimestampMs) {
        let seq = self.last_seq;
        let payment = self.payment_mut(id);
        payment.stage = Stage::Release(ending);
        payment.stage_seq = seq;
        payment.updated_at = at;
        let expires_at = payment.hold_expires_at.take();
        self.remove_hold_timer(id, expires_at);
    }

    fn remove_hold_timer(&mut self, id: &PaymentId, expires_at: Option<TimestampMs>) {
        if let Some(expires_at) = expires_at {
            self.timers
                .remove(&(expires_at, TimerKey::PaymentHold(id.clone())));
        }
    }
}

#[inline]
fn set_first(payment: &mut Payment, at: TimestampMs) {
    if payment.first.is_none() {
        payment.first = Some(FirstOutcome {
            status: payment.status,
            code: payment.code,
            at,
        });
    }
}

#[inline]
fn finish(payment: &mut Payment, status: PaymentStatus, code: Option<Rejection>, at: u64) {
    payment.stage = Stage::Done;
    payment.status = status;
    payment.code = code;
    payment.updated_at = at;
    set_first(payment, at);
}
