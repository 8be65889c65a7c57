//! Load shedding at the front: a request that would wait longer than the
//! queueing deadline is refused at once with 503 `overloaded` and `Retry-After`,
//! before its body is read, so that the requests the server does take keep
//! their latency and the CPU goes to them rather than to a growing queue.
//!
//! The signal is the engine's admission control (`surge_actors::admission`),
//! which limits the client requests in flight inside the engine to what it
//! answers within the deadline: at that limit, a request is refused here before
//! it costs a body read, a parse and a token check.
//!
//! Each HTTP worker also runs a probe that sleeps `PROBE_PERIOD` and notes how
//! late it woke up (`surge_http_worker_lag_seconds`): a woken task waits behind
//! every task already ready on that worker's thread, so the lag is how long a
//! request arriving then waited before its handler ran. It is reported, not
//! acted on: a worker parsing a batch of 8,190 payments lags past 50 ms doing
//! work it should do, and shedding on lag refused the next batch (measured:
//! one batch in four refused in `surge bench payments-batch --concurrency 4`).

use super::problem::Problem;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a worker's probe wakes up to measure its lag.
const PROBE_PERIOD: Duration = Duration::from_millis(5);

/// One worker thread's view of its own queue.
struct WorkerLag {
    /// When the probe should wake next.
    due: Cell<Instant>,
    /// How late the probe woke the last time.
    last: Cell<Duration>,
    started: Cell<bool>,
}

/// The last lag any worker's probe measured, in µs (for `/metrics`).
pub static LAST_LAG_US: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static LAG: WorkerLag = WorkerLag {
        due: Cell::new(Instant::now()),
        last: Cell::new(Duration::ZERO),
        started: Cell::new(false),
    };
}

/// Starts this worker thread's probe, once per thread. Call it from the app
/// factory, which actix-web runs on each worker.
pub fn start_probe() {
    let first = LAG.with(|lag| !lag.started.replace(true));
    if first {
        actix_web::rt::spawn(probe());
    }
}

async fn probe() {
    loop {
        let due = Instant::now() + PROBE_PERIOD;
        LAG.with(|lag| lag.due.set(due));
        tokio::time::sleep_until(due.into()).await;
        let late = Instant::now().saturating_duration_since(due);
        LAG.with(|lag| lag.last.set(late));
        LAST_LAG_US.store(
            u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// How long a request arriving now on this worker waits before it is handled:
/// the probe's last lag, or how overdue the probe is if that is more.
pub fn worker_lag(now: Instant) -> Duration {
    LAG.with(|lag| {
        lag.last
            .get()
            .max(now.saturating_duration_since(lag.due.get()))
    })
}

/// Whether a path is work for the shards (and so shed under overload). Health,
/// readiness, metrics, the document and the operator's routes always get
/// through, and the feed has its own connection limit.
fn sheddable(path: &str) -> bool {
    path.starts_with("/v1/") && path != "/v1/feed"
}

/// Middleware: refuses shard work with 503 `overloaded` while the engine is at
/// its admission limit; a zero `deadline` turns shedding off.
pub async fn gate<B: MessageBody>(
    deadline: Duration,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if !deadline.is_zero() && sheddable(request.path()) && overloaded(&request) {
        if let Some(metrics) = request.app_data::<actix_web::web::Data<crate::metrics::Metrics>>() {
            metrics.shed_at_front();
        }
        let response = Problem::overloaded(format!(
            "requests are waiting longer than the queueing deadline of {} ms",
            deadline.as_millis()
        ))
        .response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn overloaded(request: &ServiceRequest) -> bool {
    let engine_full = request
        .app_data::<actix_web::web::Data<super::ApiState>>()
        .is_some_and(|state| state.engine.saturated());
    engine_full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overdue_probe_counts_as_lag() {
        let now = Instant::now();
        LAG.with(|lag| {
            lag.due.set(now);
            lag.last.set(Duration::from_millis(2));
        });
        assert_eq!(worker_lag(now), Duration::from_millis(2));
        assert_eq!(
            worker_lag(now + Duration::from_millis(80)),
            Duration::from_millis(80)
        );
    }

    #[test]
    fn only_shard_work_is_shed() {
        assert!(sheddable("/v1/payments"));
        assert!(sheddable("/v1/orders/o-1"));
        for path in [
            "/v1/feed",
            "/health",
            "/ready",
            "/metrics",
            "/admin/shards",
            "/openapi.json",
        ] {
            assert!(!sheddable(path), "{path}");
        }
    }
}
