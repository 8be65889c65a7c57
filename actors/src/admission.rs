//! Admission control: how much client work the engine takes at once.
//!
//! A request that cannot be served within the queueing deadline is worth
//! refusing at once (503 `overloaded`, `Retry-After`): it costs the server
//! almost nothing, the client can go elsewhere or come back, and the requests
//! that are taken keep their latency. Where the queue forms depends on what is
//! short (the shard's thread, the journal, the HTTP workers' CPU), so the limit
//! is not on any one queue but on the client requests in flight inside the
//! engine (a command, a read, or a whole batch), from submission to answer, and
//! it adapts: Little's law says the in-flight count that keeps latency within
//! the deadline is throughput x deadline, and neither is known in advance.
//! Latency is sampled only from requests whose answer is due at once (single
//! commands and reads): a batch's takes as long as its size, and an order's
//! answer may wait for its saga by design (`wait_ms`), which says nothing about
//! queueing.
//!
//! The controller is AIMD over windows of `WINDOW`: a window in which more
//! than one sampled answer in `LATE_ONE_IN` came later than the deadline
//! shrinks the limit by a quarter; one on time that reached the limit grows it
//! by a tenth. So the p99 of answers is held to the deadline, and a closed loop
//! of clients whose answers are on time is never shed, however many they are.
//! In-flight counts and late answers are atomics, so admitting costs two atomic
//! operations and no lock; the one caller that closes a window adjusts the
//! limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Length of one measuring window.
const WINDOW: Duration = Duration::from_millis(100);
/// The limit never goes below this many requests.
pub const LIMIT_MIN: u64 = 64;
/// Nor above this.
pub const LIMIT_MAX: u64 = 1 << 20;
/// A window in which more than one answer in this many came later than the
/// deadline shrinks the limit: the controller holds the p99 to the deadline.
const LATE_ONE_IN: u64 = 100;
/// Where the limit starts.
const LIMIT_START: u64 = 4_096;

/// The engine's admission controller (see the module documentation).
#[derive(Debug)]
pub struct Admission {
    /// Zero: admission control is off and everything is taken.
    deadline_us: u64,
    epoch: Instant,
    in_flight: AtomicU64,
    limit: AtomicU64,
    /// Highest in-flight count seen in the current window.
    peak: AtomicU64,
    window_started_us: AtomicU64,
    /// Sampled answers of the current window, and those later than the deadline.
    answered: AtomicU64,
    late: AtomicU64,
    shed: AtomicU64,
}

/// A client request taken: released (and its latency counted) when dropped.
#[must_use = "the request stays in flight until the permit is dropped"]
pub struct Permit<'a> {
    admission: &'a Admission,
    /// Whether its latency is a sample of queueing (see the module's documentation).
    sampled: bool,
    started: Instant,
}

impl Admission {
    /// `deadline`: the latency admission keeps served requests within
    /// (`Duration::ZERO`: no admission control).
    pub fn new(deadline: Duration) -> Self {
        Self {
            deadline_us: u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            in_flight: AtomicU64::new(0),
            limit: AtomicU64::new(LIMIT_START),
            peak: AtomicU64::new(0),
            window_started_us: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            late: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Whether new work would be refused now (the front door asks before it
    /// reads a request's body).
    pub fn saturated(&self) -> bool {
        self.deadline_us > 0
            && self.in_flight.load(Ordering::Relaxed) >= self.limit.load(Ordering::Relaxed)
    }

    /// Takes a client request, or refuses it: `None` means answer it
    /// `Overloaded` at once. `sampled`: its latency counts (an answer due at once).
    pub fn admit(&self, sampled: bool) -> Option<Permit<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.deadline_us > 0 && before >= self.limit.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.peak.fetch_max(before + 1, Ordering::Relaxed);
        Some(Permit {
            admission: self,
            sampled,
            started: Instant::now(),
        })
    }

    /// Requests in flight, the current limit, and requests refused so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.limit.load(Ordering::Relaxed),
            self.shed.load(Ordering::Relaxed),
        )
    }

    fn release(&self, sampled: bool, latency: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.deadline_us == 0 || !sampled {
            return;
        }
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.answered.fetch_add(1, Ordering::Relaxed);
        if latency_us > self.deadline_us {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        let now_us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let started = self.window_started_us.load(Ordering::Relaxed);
        let window_us = WINDOW.as_micros() as u64;
        if now_us.saturating_sub(started) < window_us
            || self
                .window_started_us
                .compare_exchange(started, now_us, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // This caller closed the window: adjust the limit from what it saw.
        let answered = self.answered.swap(0, Ordering::Relaxed);
        let late = self.late.swap(0, Ordering::Relaxed);
        let peak = self
            .peak
            .swap(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        let elapsed_us = now_us.saturating_sub(started).max(1);
        let floor = sustainable(answered, elapsed_us, self.deadline_us);
        let next = next_limit(limit, late * LATE_ONE_IN > answered, peak).max(floor);
        self.limit.store(next, Ordering::Relaxed);
    }
}

/// Little's law: what the engine answered in the window, at that rate, keeps
/// half the deadline's worth of requests in flight. The limit never goes below
/// it, so a window made late by something other than too much work in flight
/// (the CPU spent refusing requests, a snapshot, a slow disk) cannot spiral
/// the limit down to where the engine idles while the door refuses work.
fn sustainable(answered: u64, elapsed_us: u64, deadline_us: u64) -> u64 {
    let per_deadline = u128::from(answered) * u128::from(deadline_us) / u128::from(elapsed_us) / 2;
    u64::try_from(per_deadline)
        .unwrap_or(LIMIT_MAX)
        .clamp(LIMIT_MIN, LIMIT_MAX)
}

/// The AIMD step: a window with too many answers later than the deadline
/// shrinks the limit by a quarter; one on time that used the whole limit grows
/// it by a tenth; otherwise (the limit was not what held anything back) it stays.
fn next_limit(limit: u64, late: bool, peak: u64) -> u64 {
    if late {
        (limit - limit / 4).max(LIMIT_MIN)
    } else if peak >= limit {
        (limit + limit / 10 + 1).min(LIMIT_MAX)
    } else {
        limit
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.release(self.sampled, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_past_the_limit_is_refused_and_counted() {
        let admission = Admission::new(Duration::from_millis(50));
        let taken: Vec<_> = (0..LIMIT_START)
            .map(|_| admission.admit(true).expect("within the limit"))
            .collect();
        assert!(admission.saturated());
        assert!(admission.admit(true).is_none());
        assert_eq!(admission.stats(), (LIMIT_START, LIMIT_START, 1));
        drop(taken);
        assert!(!admission.saturated());
        assert!(admission.admit(false).is_some());
    }

    #[test]
    fn off_means_everything_is_taken() {
        let admission = Admission::new(Duration::ZERO);
        let _taken: Vec<_> = (0..LIMIT_START * 2)
            .map(|_| admission.admit(true).expect("taken"))
            .collect();
        assert!(!admission.saturated());
    }

    /// Answers taking `each` for a little over two windows.
    fn answers(admission: &Admission, sampled: bool, each: Duration) {
        let until = Instant::now() + WINDOW * 2 + Duration::from_millis(20);
        while Instant::now() < until {
            let permit = admission.admit(sampled).expect("taken");
            std::thread::sleep(each);
            drop(permit);
        }
    }

    #[test]
    fn slow_answers_shrink_the_limit_and_unsampled_ones_do_not() {
        // Every answer later than the deadline.
        let slow = Duration::from_millis(2);
        let singles = Admission::new(Duration::from_millis(1));
        answers(&singles, true, slow);
        assert!(singles.stats().1 < LIMIT_START, "{:?}", singles.stats());
        let batches = Admission::new(Duration::from_millis(1));
        answers(&batches, false, slow);
        assert_eq!(batches.stats().1, LIMIT_START);
    }

    #[test]
    fn the_limit_stays_at_what_the_engine_answers_in_half_the_deadline() {
        // 3,000 answers in 100 ms with a 50 ms deadline: 750 in flight.
        assert_eq!(sustainable(3_000, 100_000, 50_000), 750);
        assert_eq!(sustainable(0, 100_000, 50_000), LIMIT_MIN);
        assert_eq!(sustainable(u64::MAX, 1, u64::MAX), LIMIT_MAX);
    }

    #[test]
    fn the_limit_shrinks_when_late_and_grows_when_full_and_on_time() {
        assert_eq!(next_limit(1_000, true, 1_000), 750);
        assert_eq!(next_limit(LIMIT_MIN, true, 0), LIMIT_MIN);
        assert_eq!(next_limit(1_000, false, 1_000), 1_101);
        assert_eq!(next_limit(1_000, false, 10), 1_000);
        assert_eq!(next_limit(LIMIT_MAX, false, LIMIT_MAX), LIMIT_MAX);
    }
}
