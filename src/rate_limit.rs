//! Per-subject rate limits (GCRA): in process with governor, and, when
//! `redis.url` is set, one limit shared by every node through a GCRA script
//! that Redis runs atomically on its own clock. When Redis does not answer in
//! `rate_limit.redis_timeout_ms`, the node falls back to its own limit for that
//! request, counts it in `/metrics` (`surge_rate_limit_fallbacks_total`,
//! `surge_rate_limit_redis_up`), and tries Redis again after a second.

use governor::{DefaultKeyedRateLimiter, Quota};
use prometheus::{IntCounter, IntGauge, Registry};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long after a failed Redis call the node keeps to its own limit before
/// asking Redis again.
const REDIS_RETRY_AFTER_MS: u64 = 1_000;

/// GCRA on Redis's clock: the key holds the theoretical arrival time (µs) of the
/// next request; a request is allowed if that time is at most `burst`
/// intervals ahead. Returns `{1, 0}` (allowed) or `{0, µs to wait}`.
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now + interval > tolerance then
  return {0, math.ceil(tat - now + interval - tolerance)}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {1, 0}
";

/// A refused request: how long until one is allowed, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_s: u64,
    pub burst: u32,
}

struct Shared {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    script: redis::Script,
    key_prefix: String,
    timeout: Duration,
    down_until_ms: AtomicU64,
}

pub struct RateLimiter {
    local: DefaultKeyedRateLimiter<String>,
    requests_per_s: u32,
    burst: u32,
    subjects_max: usize,
    shared: Option<Shared>,
    fallbacks: IntCounter,
    redis_up: IntGauge,
    limited: IntCounter,
}

/// Settings of `RateLimiter::new`.
pub struct RateLimitOptions<'a> {
    pub requests_per_s: u32,
    pub burst: u32,
    pub subjects_max: usize,
    /// The Redis the limit is shared through (empty: none).
    pub redis_url: &'a str,
    pub redis_key_prefix: &'a str,
    pub redis_timeout_ms: u64,
}

impl RateLimiter {
    pub fn new(options: &RateLimitOptions<'_>, registry: &Registry) -> anyhow::Result<Self> {
        let rate = NonZeroU32::new(options.requests_per_s.max(1)).expect("positive");
        let burst = NonZeroU32::new(options.burst.max(1)).expect("positive");
        let shared = if options.redis_url.is_empty() {
            None
        } else {
            Some(Shared {
                client: redis::Client::open(options.redis_url)
                    .map_err(|e| anyhow::anyhow!("invalid redis.url: {e}"))?,
                connection: tokio::sync::OnceCell::new(),
                script: redis::Script::new(GCRA_SCRIPT),
                key_prefix: options.redis_key_prefix.to_owned(),
                timeout: Duration::from_millis(options.redis_timeout_ms.max(1)),
                down_until_ms: AtomicU64::new(0),
            })
        };
        let fallbacks = IntCounter::new(
            "rate_limit_fallbacks_total",
            "Requests limited by this node alone because Redis did not answer",
        )?;
        let redis_up = IntGauge::new(
            "rate_limit_redis_up",
            "1 while the shared rate limit answers from Redis, 0 while this node falls back to its own (absent: no Redis)",
        )?;
        let limited = IntCounter::new("rate_limited_total", "Requests refused with 429")?;
        registry.register(Box::new(fallbacks.clone()))?;
        registry.register(Box::new(limited.clone()))?;
        if shared.is_some() {
            registry.register(Box::new(redis_up.clone()))?;
            redis_up.set(1);
        }
        Ok(Self {
            local: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            requests_per_s: rate.get(),
            burst: burst.get(),
            subjects_max: options.subjects_max.max(1),
            shared,
            fallbacks,
            redis_up,
            limited,
        })
    }

    /// Whether every check needs Redis (then `check` awaits it).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// One request of `subject`: the shared limit when there is one and it
    /// answers, else this node's.
    pub async fn check(&self, subject: &str) -> Result<(), Limited> {
        if let Some(shared) = &self.shared {
            if now_ms() >= shared.down_until_ms.load(Ordering::Relaxed) {
                match tokio::time::timeout(shared.timeout, self.check_redis(shared, subject)).await
                {
                    Ok(Ok(verdict)) => {
                        self.redis_up.set(1);
                        return self.counted(verdict);
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "rate limit: Redis failed; this node limits alone")
                    }
                    Err(_) => tracing::warn!("rate limit: Redis timed out; this node limits alone"),
                }
                shared
                    .down_until_ms
                    .store(now_ms() + REDIS_RETRY_AFTER_MS, Ordering::Relaxed);
                self.redis_up.set(0);
            }
            self.fallbacks.inc();
        }
        self.check_local(subject)
    }

    /// This node's limit alone.
    pub fn check_local(&self, subject: &str) -> Result<(), Limited> {
        if self.local.len() >= self.subjects_max {
            // Subjects whose limit has fully recovered lose nothing by going.
            self.local.retain_recent();
        }
        let verdict = self
            .local
            .check_key(&subject.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                self.limited_after(wait)
            });
        self.counted(verdict)
    }

    async fn check_redis(
        &self,
        shared: &Shared,
        subject: &str,
    ) -> redis::RedisResult<Result<(), Limited>> {
        let connection = shared
            .connection
            .get_or_try_init(|| redis::aio::ConnectionManager::new(shared.client.clone()))
            .await?;
        let interval_us = 1_000_000 / u64::from(self.requests_per_s);
        let (allowed, wait_us): (i64, i64) = shared
            .script
            .key(format!("{}{subject}", shared.key_prefix))
            .arg(interval_us)
            .arg(self.burst)
            .invoke_async(&mut connection.clone())
            .await?;
        Ok(if allowed == 1 {
            Ok(())
        } else {
            Err(self.limited_after(Duration::from_micros(wait_us.max(0) as u64)))
        })
    }

    fn limited_after(&self, wait: Duration) -> Limited {
        Limited {
            retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
            burst: self.burst,
        }
    }

    fn counted(&self, verdict: Result<(), Limited>) -> Result<(), Limited> {
        if verdict.is_err() {
            self.limited.inc();
        }
        verdict
    }
}

fn now_ms() -> u64 {
    surge_actors::engine::system_clock_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(requests_per_s: u32, burst: u32) -> RateLimiter {
        let options = RateLimitOptions {
            requests_per_s,
            burst,
            subjects_max: 10,
            redis_url: "",
            redis_key_prefix: "",
            redis_timeout_ms: 50,
        };
        RateLimiter::new(&options, &Registry::new()).expect("limiter")
    }

    #[test]
    fn a_subject_over_its_burst_is_told_when_to_retry() {
        let limiter = limiter(1, 2);
        assert!(limiter.check_local("a").is_ok());
        assert!(limiter.check_local("a").is_ok());
        assert_eq!(
            limiter.check_local("a"),
            Err(Limited {
                retry_after_s: 1,
                burst: 2
            })
        );
        assert!(limiter.check_local("b").is_ok(), "subjects are independent");
        assert_eq!(limiter.limited.get(), 1);
    }
}
