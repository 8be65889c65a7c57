//! Prometheus metrics: HTTP requests by route and status, and what the engine
//! reports (batch sizes, journal flush latency, recoveries, snapshots, mailboxes).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::time::{Duration, Instant};
use surge_actors::engine::EngineObserver;
use surge_actors::{Engine, ShardId};

/// Every metric Surge exports.
pub struct Metrics {
    pub registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    batch_events: HistogramVec,
    flush_latency: HistogramVec,
    flush_failures: IntCounterVec,
    recovery_seconds: HistogramVec,
    snapshot_bytes: HistogramVec,
    snapshot_seconds: HistogramVec,
    shard_mailbox: IntGaugeVec,
    shard_restarts: IntGaugeVec,
    shard_last_seq: IntGaugeVec,
    shard_open_entities: IntGaugeVec,
    shard_open_entities_max: IntGaugeVec,
    shard_queue_delay: GaugeVec,
    http_shed: IntCounter,
    http_worker_lag: prometheus::Gauge,
    admission: IntGaugeVec,
    admission_shed: IntCounter,
}

pub fn must<T>(result: prometheus::Result<T>) -> T {
    // Metric definitions are static; a failure is a programming error at start.
    result.expect("metric definition is valid")
}

impl Metrics {
    #[expect(clippy::too_many_lines, reason = "registers every metric in one place")]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("surge".into()), None).expect("valid prefix");
        let latency_buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ];
        let http_requests = must(IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        ));
        let http_latency = must(HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(latency_buckets.clone()),
            &["route", "method", "status"],
        ));
        let batch_events = must(HistogramVec::new(
            HistogramOpts::new("shard_batch_events", "Events per journal flush")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 16).expect("valid buckets")),
            &["shard"],
        ));
        let flush_latency = must(HistogramVec::new(
            HistogramOpts::new("journal_flush_seconds", "Journal append latency per batch")
                .buckets(latency_buckets.clone()),
            &["shard"],
        ));
        let flush_failures = must(IntCounterVec::new(
            Opts::new("journal_flush_failures_total", "Failed journal appends"),
            &["shard"],
        ));
        let recovery_seconds = must(HistogramVec::new(
            HistogramOpts::new("shard_recovery_seconds", "Time to rebuild a shard")
                .buckets(latency_buckets.clone()),
            &["shard"],
        ));
        let snapshot_bytes = must(HistogramVec::new(
            HistogramOpts::new("snapshot_bytes", "Snapshot size")
                .buckets(prometheus::exponential_buckets(1024.0, 4.0, 12).expect("valid buckets")),
            &["shard"],
        ));
        let snapshot_seconds = must(HistogramVec::new(
            HistogramOpts::new("snapshot_seconds", "Snapshot encode and write time")
                .buckets(latency_buckets),
            &["shard"],
        ));
        let shard_mailbox = must(IntGaugeVec::new(
            Opts::new("shard_mailbox_len", "Messages waiting in a shard's mailbox"),
            &["shard"],
        ));
        let shard_restarts = must(IntGaugeVec::new(
            Opts::new("shard_restarts", "Restarts of a shard since start"),
            &["shard"],
        ));
        let shard_last_seq = must(IntGaugeVec::new(
            Opts::new("shard_last_seq", "Last durable sequence number of a shard"),
            &["shard"],
        ));
        let shard_open_entities = must(IntGaugeVec::new(
            Opts::new(
                "shard_open_entities",
                "Payments, orders and reservations a shard holds that are not final yet",
            ),
            &["shard"],
        ));
        let shard_open_entities_max = must(IntGaugeVec::new(
            Opts::new(
                "shard_open_entities_max",
                "Open entities at which a shard refuses new ones with 503 overloaded",
            ),
            &["shard"],
        ));
        let shard_queue_delay = must(GaugeVec::new(
            Opts::new(
                "shard_queue_delay_seconds",
                "How long the last client message a shard dequeued had waited in its mailbox",
            ),
            &["shard"],
        ));
        let http_shed = must(IntCounter::new(
            "http_shed_total",
            "Requests refused with 503 overloaded before their body was read, while their HTTP worker lagged past engine.queue_deadline_ms",
        ));
        let http_worker_lag = must(prometheus::Gauge::new(
            "http_worker_lag_seconds",
            "How late an HTTP worker's probe last woke up: how long a request arriving then waited before its handler ran",
        ));
        let admission = must(IntGaugeVec::new(
            Opts::new(
                "engine_admission",
                "Client requests in flight inside the engine (in_flight) and the adaptive limit past which new ones get 503 overloaded (limit)",
            ),
            &["value"],
        ));
        let admission_shed = must(IntCounter::new(
            "engine_admission_shed_total",
            "Client requests refused with 503 overloaded at the engine's admission limit",
        ));
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_latency.clone()),
            Box::new(batch_events.clone()),
            Box::new(flush_latency.clone()),
            Box::new(flush_failures.clone()),
            Box::new(recovery_seconds.clone()),
            Box::new(snapshot_bytes.clone()),
            Box::new(snapshot_seconds.clone()),
            Box::new(shard_mailbox.clone()),
            Box::new(shard_restarts.clone()),
            Box::new(shard_last_seq.clone()),
            Box::new(shard_open_entities.clone()),
            Box::new(shard_open_entities_max.clone()),
            Box::new(shard_queue_delay.clone()),
            Box::new(http_shed.clone()),
            Box::new(http_worker_lag.clone()),
            Box::new(admission.clone()),
            Box::new(admission_shed.clone()),
        ] {
            must(registry.register(collector));
        }
        // The process's resident memory and CPU time (`surge_process_*`): what
        // `surge bench` samples each second to chart memory and CPU per operation
        // as an outside client sees the server.
        must(registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        Self {
            registry,
            http_requests,
            http_latency,
            batch_events,
            flush_latency,
            flush_failures,
            recovery_seconds,
            snapshot_bytes,
            snapshot_seconds,
            shard_mailbox,
            shard_restarts,
            shard_last_seq,
            shard_open_entities,
            shard_open_entities_max,
            shard_queue_delay,
            http_shed,
            http_worker_lag,
            admission,
            admission_shed,
        }
    }

    /// Counts a request shed at the front (`api::overload::gate`).
    pub fn shed_at_front(&self) {
        self.http_shed.inc();
    }

    /// Refreshes the per-shard gauges from the engine, then renders everything.
    pub fn render(&self, engine: &Engine) -> String {
        for status in engine.shard_status() {
            let shard = status.id.0.to_string();
            self.shard_mailbox
                .with_label_values(&[shard.as_str()])
                .set(status.mailbox_len as i64);
            self.shard_restarts
                .with_label_values(&[shard.as_str()])
                .set(status.restarts as i64);
            self.shard_last_seq
                .with_label_values(&[shard.as_str()])
                .set(status.last_seq as i64);
            self.shard_open_entities
                .with_label_values(&[shard.as_str()])
                .set(status.open_entities as i64);
            self.shard_open_entities_max
                .with_label_values(&[shard.as_str()])
                .set(status.open_entities_max as i64);
            self.shard_queue_delay
                .with_label_values(&[shard.as_str()])
                .set(status.queue_delay_us as f64 / 1e6);
        }
        let (in_flight, limit, shed) = engine.admission_stats();
        self.admission
            .with_label_values(&["in_flight"])
            .set(in_flight as i64);
        self.admission
            .with_label_values(&["limit"])
            .set(limit as i64);
        self.admission_shed
            .inc_by(shed.saturating_sub(self.admission_shed.get()));
        self.http_worker_lag.set(
            crate::api::overload::LAST_LAG_US.load(std::sync::atomic::Ordering::Relaxed) as f64
                / 1e6,
        );
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = encoder.encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineObserver for Metrics {
    fn batch_flushed(&self, shard: ShardId, events: usize, elapsed: Duration, ok: bool) {
        let shard = shard.0.to_string();
        self.batch_events
            .with_label_values(&[shard.as_str()])
            .observe(events as f64);
        self.flush_latency
            .with_label_values(&[shard.as_str()])
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.flush_failures
                .with_label_values(&[shard.as_str()])
                .inc();
        }
    }

    fn recovered(&self, shard: ShardId, elapsed: Duration, _events_replayed: usize) {
        self.recovery_seconds
            .with_label_values(&[shard.0.to_string().as_str()])
            .observe(elapsed.as_secs_f64());
    }

    fn snapshot_written(&self, shard: ShardId, bytes: usize, elapsed: Duration) {
        let shard = shard.0.to_string();
        self.snapshot_bytes
            .with_label_values(&[shard.as_str()])
            .observe(bytes as f64);
        self.snapshot_seconds
            .with_label_values(&[shard.as_str()])
            .observe(elapsed.as_secs_f64());
    }
}

/// Middleware: counts and times every request by its route *pattern* (bounded
/// cardinality, unlike raw paths).
pub async fn track(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let method = request.method().as_str().to_owned();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16().to_string();
        let labels = [route.as_str(), method.as_str(), status.as_str()];
        metrics.http_requests.with_label_values(&labels).inc();
        metrics
            .http_latency
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// `GET /metrics`
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", security(()),
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String,
               description = "Prometheus text format")))]
pub async fn endpoint(
    metrics: web::Data<Metrics>,
    state: web::Data<crate::api::ApiState>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(&state.engine))
}
