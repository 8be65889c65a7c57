//! The soak scenario: a day's mix at a fixed rate, for as long as `--duration-s`
//! says, so that what the server keeps in memory for finished work shows.
//!
//! Per 100 jobs (a job is a client's flow of one to two requests):
//! * 38 single payments;
//! * 18 two-phase payments: authorized with a short hold, then captured (60%,
//!   under an `Idempotency-Key`), voided (20%) or left to expire (20%);
//! * 20 reservations with a short TTL: committed (50%, under an
//!   `Idempotency-Key`), released (25%) or left to expire (25%);
//! * 18 orders of one or two long-tail SKUs;
//! * 3 reads of a payment made long ago (by now in the archive);
//! * 3 retries of a payment id made long ago with another body, which must be
//!   refused `idempotency_conflict`: an id stays unique after its payment left
//!   memory.
//!
//! A job's kind follows from its number alone, so a later job knows which
//! earlier ones made payments.

use super::{cents, Ctx, PAYMENT_CENTS_MAX};
use crate::bench::client::{HoldBody, Outcome, PaymentBody};
use std::sync::Arc;

/// How long a two-phase payment's hold lasts when nobody captures or voids it.
const HOLD_TIMEOUT_MS: u64 = 3_000;
/// A soak reservation's time to live.
const RESERVATION_TTL_MS: u64 = 3_000;
/// How far back (in jobs) a read or retry of an old payment reaches, at least:
/// far enough that the payment has left memory at any rate this machine runs.
const OLD_JOBS_MIN: u64 = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Payment,
    TwoPhase,
    Reservation,
    Order,
    ReadOld,
    RetryOld,
}

/// Job `k`'s kind: a hash of `k`, not the shared random stream, so that any job
/// can tell what another was.
fn job(k: u64) -> Job {
    match splitmix(k) % 100 {
        0..38 => Job::Payment,
        38..56 => Job::TwoPhase,
        56..76 => Job::Reservation,
        76..94 => Job::Order,
        94..97 => Job::ReadOld,
        _ => Job::RetryOld,
    }
}

fn splitmix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A single payment's job at least `OLD_JOBS_MIN` before `k`, if there is one.
fn old_payment(k: u64) -> Option<u64> {
    let newest = k.checked_sub(OLD_JOBS_MIN)?;
    let start = fastrand::u64(0..=newest);
    (0..=start).rev().take(64).find(|&j| job(j) == Job::Payment)
}

impl Ctx {
    pub(super) async fn soak(self: &Arc<Self>, k: u64) -> Vec<Outcome> {
        match job(k) {
            Job::Payment => {
                let outcome = self.api.payment(&self.payment(k)).await;
                if matches!(outcome, Outcome::Error(_)) {
                    self.known
                        .lock()
                        .expect("known lock not poisoned")
                        .unanswered_payments
                        .insert(k);
                }
                vec![outcome]
            }
            Job::TwoPhase => self.two_phase(k).await,
            Job::Reservation => self.reservation(k).await,
            Job::Order => vec![self.order(k, 0, false).await],
            Job::ReadOld => match self.old_answered_payment(k) {
                Some(j) => {
                    let path = format!("/v1/payments/{}-p{j}", self.fixture.run);
                    vec![self.api.read(&path).await]
                }
                None => vec![self.api.payment(&self.payment(k)).await],
            },
            Job::RetryOld => match self.old_answered_payment(k) {
                Some(j) => vec![self.retry_old(j).await],
                None => vec![self.api.payment(&self.payment(k)).await],
            },
        }
    }

    /// An old payment whose creation was answered.
    fn old_answered_payment(&self, k: u64) -> Option<u64> {
        let j = old_payment(k)?;
        let known = self.known.lock().expect("known lock not poisoned");
        (!known.unanswered_payments.contains(&j)).then_some(j)
    }

    async fn two_phase(&self, k: u64) -> Vec<Outcome> {
        let mut payment = self.payment(k);
        payment.id = format!("{}-h{k}", self.fixture.run);
        let id = payment.id.clone();
        let hold = HoldBody {
            payment,
            capture: false,
            hold_timeout_ms: HOLD_TIMEOUT_MS,
        };
        let authorized = self.api.authorize(&hold).await;
        if authorized != Outcome::Ok {
            return vec![authorized];
        }
        let end = match fastrand::u8(0..100) {
            0..60 => self.api.capture(&id, &format!("{id}-c")).await,
            60..80 => self.api.void(&id).await,
            _ => return vec![authorized],
        };
        vec![authorized, end]
    }

    async fn reservation(&self, k: u64) -> Vec<Outcome> {
        let Some(sku) = self.tail_sku() else {
            return vec![Outcome::Error("soak needs --tail-skus".into())];
        };
        let id = format!("{}-r{k}", self.fixture.run);
        let held = self.api.reserve(sku, &id, 1, RESERVATION_TTL_MS).await;
        if held != Outcome::Ok {
            return vec![held];
        }
        let end = match fastrand::u8(0..100) {
            0..50 => {
                let committed = self.api.commit(sku, &id, &format!("{id}-c")).await;
                let mut known = self.known.lock().expect("known lock not poisoned");
                match &committed {
                    Outcome::Ok => *known.sold.entry(sku.to_owned()).or_default() += 1,
                    Outcome::Error(_) => known.uncertain_commits.push((sku.to_owned(), id)),
                    Outcome::Rejected(_) => {}
                }
                committed
            }
            50..75 => self.api.release(sku, &id).await,
            _ => return vec![held],
        };
        vec![held, end]
    }

    /// Payment `j` again under its id with another amount: the engine must refuse
    /// it as a conflict, whether or not the first is still in memory.
    async fn retry_old(&self, j: u64) -> Outcome {
        let (from, to) = self.pick_pair();
        let retry = PaymentBody {
            id: format!("{}-p{j}", self.fixture.run),
            from,
            to,
            // Above any first amount (at most PAYMENT_CENTS_MAX): never the same body.
            amount: cents(PAYMENT_CENTS_MAX as i64 + 1 + fastrand::i64(0..100)),
            currency: "USD",
        };
        match self.api.payment(&retry).await {
            Outcome::Rejected(code) if code == "idempotency_conflict" => Outcome::Ok,
            Outcome::Ok => Outcome::Error("an old payment id was created again".into()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_kind_in_its_share() {
        let mut counts = std::collections::BTreeMap::new();
        for k in 0..100_000 {
            *counts.entry(format!("{:?}", job(k))).or_insert(0u32) += 1;
        }
        let share = |name: &str| f64::from(counts[name]) / 1_000.0;
        for (name, percent) in [
            ("Payment", 38.0),
            ("TwoPhase", 18.0),
            ("Reservation", 20.0),
            ("Order", 18.0),
            ("ReadOld", 3.0),
            ("RetryOld", 3.0),
        ] {
            assert!(
                (share(name) - percent).abs() < 1.0,
                "{name}: {}% instead of {percent}%",
                share(name)
            );
        }
    }

    #[test]
    fn an_old_payment_is_a_payment_job_far_enough_back() {
        assert_eq!(old_payment(OLD_JOBS_MIN - 1), None);
        for k in [OLD_JOBS_MIN + 1_000, OLD_JOBS_MIN * 3, 10_000_000] {
            for _ in 0..100 {
                let j = old_payment(k).expect("payments are common");
                assert_eq!(job(j), Job::Payment);
                assert!(j + OLD_JOBS_MIN <= k);
            }
        }
    }
}
