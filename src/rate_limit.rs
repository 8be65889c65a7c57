//! Per-subject rate limiting: a token bucket per JWT `sub`.

use dashmap::DashMap;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Token buckets keyed by subject, at most `subjects_max` of them.
pub struct RateLimiter {
    buckets: DashMap<String, Bucket>,
    requests_per_s: f64,
    burst: f64,
    subjects_max: usize,
}

impl RateLimiter {
    pub fn new(requests_per_s: u32, burst: u32, subjects_max: usize) -> Self {
        Self {
            buckets: DashMap::new(),
            requests_per_s: f64::from(requests_per_s.max(1)),
            burst: f64::from(burst.max(1)),
            subjects_max: subjects_max.max(1),
        }
    }

    /// Takes one token for `subject`; when there is none, returns how many whole
    /// seconds until there will be (for `Retry-After`).
    pub fn check(&self, subject: &str) -> Result<(), u64> {
        let now = Instant::now();
        if !self.buckets.contains_key(subject) && self.buckets.len() >= self.subjects_max {
            self.evict_full_buckets(now);
        }
        let mut bucket = self.buckets.entry(subject.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            refilled_at: now,
        });
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.requests_per_s).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_s = (1.0 - bucket.tokens) / self.requests_per_s;
            Err(wait_s.ceil().max(1.0) as u64)
        }
    }

    /// Forgets subjects whose bucket has refilled: they lose nothing by it.
    fn evict_full_buckets(&self, now: Instant) {
        let (rate, burst) = (self.requests_per_s, self.burst);
        self.buckets.retain(|_, bucket| {
            bucket.tokens + now.duration_since(bucket.refilled_at).as_secs_f64() * rate < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_over_its_burst_is_told_when_to_retry() {
        let limiter = RateLimiter::new(1, 2, 10);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert_eq!(limiter.check("a"), Err(1));
        assert!(limiter.check("b").is_ok(), "subjects are independent");
    }
}
