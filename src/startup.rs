//! Builds the application: storage, engine, HTTP server on its own listener (so
//! tests can bind port 0), and the graceful shutdown that follows the server.

use crate::api::{self, auth::AuthKeys, limits::ApiLimits, problem::Problem, ApiState};
use crate::configuration::Settings;
use crate::feed::{self, hub::FeedHub, FeedMetrics, FeedState};
use crate::metrics::{self, Metrics};
use crate::rate_limit::RateLimiter;
use crate::storage::{self, StorageOptions};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use surge_actors::engine::EngineObserver;
use surge_actors::notice::Notice;
use surge_actors::shard::ShardLimits;
use surge_actors::{Engine, EngineConfig, ShardId};
use utoipa::OpenApi;

pub struct Application {
    port: u16,
    server: Server,
    engine: Engine,
}

/// Connections the kernel queues for a listener before the server accepts them
/// (capped by `net.core.somaxconn`). `std::net::TcpListener::bind` asks for 128:
/// the 256 clients of a flash sale connecting at once overflowed it, and each
/// dropped connection attempt came back a second later, the 1.0 s maximum
/// latency of the bench reports.
pub const LISTEN_BACKLOG_CONNECTIONS_MAX: i32 = 2048;

/// Binds a listener on the first address `addr` resolves to that can be bound,
/// with a backlog of `LISTEN_BACKLOG_CONNECTIONS_MAX`. Like std's `bind`, it sets
/// `SO_REUSEADDR` (a restarted server takes its port back at once; a port another
/// server listens on still fails).
pub fn listen(addr: impl ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut failure = None;
    for addr in addr.to_socket_addrs()? {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        let bound = socket
            .bind(&addr.into())
            .and_then(|()| socket.listen(LISTEN_BACKLOG_CONNECTIONS_MAX));
        match bound {
            Ok(()) => return Ok(socket.into()),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

impl Application {
    /// Binds the listener, opens storage (migrating it) and starts the shards.
    /// Must run inside the actix System.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The port first: a second instance started by mistake must fail here,
        // before it takes the shards' leases and so fences the running one's
        // journal writes.
        let listener = listen(settings.http.addr.as_str())
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http.addr))?;
        let (journal, changes) = storage::open_with_changes(&storage_options(&settings)).await?;
        // After `open`: its migrations made the audit table.
        let audit = crate::api::audit::AuditLog::start(
            crate::storage::audit::AuditDb::open(
                &settings.storage.url,
                std::time::Duration::from_millis(settings.storage.timeout_ms),
            )
            .await?,
        );
        let metrics = web::Data::new(Metrics::new());
        let hub = Arc::new(FeedHub::default());
        let feed = web::Data::new(FeedState {
            hub: hub.clone(),
            settings: settings.feed.clone(),
            metrics: FeedMetrics::new(&metrics.registry),
            connections: Default::default(),
        });
        if !settings.redis.url.is_empty() {
            let bridge = feed::redis::start(&settings.redis, hub.clone(), feed.metrics.clone())?;
            hub.set_forward(bridge);
        }
        // Before the shards start, so that a new sink's cursor is where the
        // changes it gets begin.
        let cdc = start_cdc(&settings, changes, &metrics.registry).await?;
        let observer = Arc::new(ServerObserver {
            metrics: metrics.clone().into_inner(),
            hub,
        });
        let mut config = engine_config(&settings, observer);
        config.limits.record_changes = !cdc.sinks.is_empty();
        let engine = Engine::start(config, journal);
        let port = listener.local_addr()?.port();
        let server = run(
            listener,
            &settings,
            engine.clone(),
            metrics,
            feed,
            audit,
            cdc,
        )?;
        tracing::info!(port, tls = settings.tls.enabled(), shards = settings.engine.shards, storage = %redacted(&settings.storage.url), "surge listening");
        Ok(Self {
            port,
            server,
            engine,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until SIGINT/SIGTERM (or the server handle stops it), then drains:
    /// the HTTP server stops accepting and finishes in-flight requests, and every
    /// shard flushes and writes a final snapshot so the next start replays little.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            result = &mut server => result?,
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutting down: no new connections, finishing requests in flight");
                // The server future must keep running to carry out its own stop.
                let (_, result) = tokio::join!(handle.stop(true), &mut server);
                result?;
            }
        }
        tracing::info!("HTTP server stopped; writing final snapshots");
        let failed = self.engine.shutdown().await;
        if failed.is_empty() {
            tracing::info!("shutdown complete");
        } else {
            tracing::warn!(
                ?failed,
                "some shards could not write a final snapshot; the journal has everything"
            );
        }
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
        "SIGINT"
    }
}

fn redacted(url: &str) -> String {
    match url.split_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => url.to_owned(),
    }
}

/// Change data capture's tailers, one per configured sink (none: off).
async fn start_cdc(
    settings: &Settings,
    changes: Option<Arc<dyn storage::changes::ChangeLog>>,
    registry: &prometheus::Registry,
) -> anyhow::Result<Arc<crate::cdc::CdcStatus>> {
    let sinks = crate::cdc::sinks(settings)?;
    if sinks.is_empty() {
        return Ok(Arc::default());
    }
    let Some(changes) = changes else {
        anyhow::bail!(
            "change data capture (cdc.amqp.url or redis.url) needs a PostgreSQL or SQLite \
             journal; storage.url is memory://"
        );
    };
    crate::cdc::start(
        changes,
        sinks,
        settings.engine.shards,
        crate::cdc::TailerOptions::from_settings(settings),
        registry,
    )
    .await
}

pub fn storage_options(settings: &Settings) -> StorageOptions {
    StorageOptions {
        url: settings.storage.url.clone(),
        pool_connections_max: settings.storage.pool_connections_max,
        timeout_ms: settings.storage.timeout_ms,
        records_per_write_max: settings.storage.records_per_write_max,
        cdc_lag_limit_events: settings.cdc.lag_limit_events,
    }
}

/// What the engine reports goes to the metrics, and durable notices to the feeds.
struct ServerObserver {
    metrics: Arc<Metrics>,
    hub: Arc<FeedHub>,
}

impl EngineObserver for ServerObserver {
    fn batch_flushed(&self, shard: ShardId, events: usize, elapsed: Duration, ok: bool) {
        self.metrics.batch_flushed(shard, events, elapsed, ok);
    }
    fn recovered(&self, shard: ShardId, elapsed: Duration, events_replayed: usize) {
        self.metrics.recovered(shard, elapsed, events_replayed);
    }
    fn snapshot_written(&self, shard: ShardId, bytes: usize, elapsed: Duration) {
        self.metrics.snapshot_written(shard, bytes, elapsed);
    }
    fn notices(&self, _shard: ShardId, notices: &[Notice]) {
        self.hub.publish_local(notices);
    }
}

fn engine_config(settings: &Settings, observer: Arc<ServerObserver>) -> EngineConfig {
    let engine = &settings.engine;
    EngineConfig {
        shards: engine.shards,
        mailbox_capacity: engine.mailbox_capacity,
        tick_interval_ms: engine.tick_interval_ms,
        journal_timeout_ms: engine.journal_timeout_ms,
        reply_timeout_ms: engine.reply_timeout_ms,
        queue_deadline_ms: engine.queue_deadline_ms,
        shard_threads: engine.shard_threads,
        hash_seed: engine.hash_seed,
        snapshot_every_events: engine.snapshot_every_events,
        snapshot_interval_s: engine.snapshot_interval_s,
        flush_at_once_events_min: engine.flush_at_once_events_min,
        limits: ShardLimits {
            retention_ms: engine.idempotency_retention_ms,
            step_resend_ms: engine.step_resend_ms,
            order_timeout_ms: settings.orders.timeout_ms,
            finished_in_memory_ms: engine.finished_in_memory_ms,
            open_entities_max: engine.open_entities_max,
            archived_filter_bytes: engine.archived_filter_bytes,
            ..ShardLimits::default()
        },
        observer,
        ..EngineConfig::default()
    }
}

fn api_limits(settings: &Settings) -> ApiLimits {
    let limits = &settings.limits;
    ApiLimits {
        amount_max: limits.amount_max,
        quantity_max: limits.quantity_max,
        stock_max: limits.stock_max,
        hold_timeout_ms_default: limits.hold_timeout_ms_default,
        hold_timeout_ms_max: limits.hold_timeout_ms_max,
        reservation_ttl_ms_default: limits.reservation_ttl_ms_default,
        reservation_ttl_ms_max: limits.reservation_ttl_ms_max,
        payments_batch_max: limits.payments_batch_max,
        order_wait_ms_default: settings.orders.wait_ms_default,
        order_wait_ms_max: settings.orders.wait_ms_max,
    }
}

fn run(
    listener: TcpListener,
    settings: &Settings,
    engine: Engine,
    metrics: web::Data<Metrics>,
    feed: web::Data<FeedState>,
    audit: Arc<crate::api::audit::AuditLog>,
    cdc: Arc<crate::cdc::CdcStatus>,
) -> anyhow::Result<Server> {
    let state = web::Data::new(ApiState {
        cdc,
        engine,
        limits: api_limits(settings),
        body_limit_bytes: settings.http.body_limit_bytes,
        batch_body_limit_bytes: settings.http.batch_body_limit_bytes,
        fault_injection: settings.admin.fault_injection,
        audit,
    });
    let document = serde_json::to_vec(&served_openapi(&state.limits))?;
    let document = web::Data::new(OpenApiDocument(web::Bytes::from(document)));
    let keys: web::Data<AuthKeys> = web::Data::new(settings.auth.keys()?);
    let limiter = web::Data::new(RateLimiter::new(
        &crate::rate_limit::RateLimitOptions {
            requests_per_s: settings.rate_limit.requests_per_s,
            burst: settings.rate_limit.burst,
            subjects_max: settings.rate_limit.subjects_max,
            redis_url: &settings.redis.url,
            redis_key_prefix: &settings.rate_limit.redis_key_prefix,
            redis_timeout_ms: settings.rate_limit.redis_timeout_ms,
        },
        &metrics.registry,
    )?);
    let queue_deadline = Duration::from_millis(settings.engine.queue_deadline_ms);
    let drain_bytes_max = settings.http.batch_body_limit_bytes;
    let mut server = HttpServer::new(move || {
        // The factory runs on each worker thread: each gets its own lag probe.
        api::overload::start_probe();
        App::new()
            .wrap(tracing_actix_web::TracingLogger::<
                crate::telemetry::RequestSpan,
            >::new())
            // Inside the metrics (a shed request is counted with its 503) and
            // outside the request's span, so shedding costs as little as it can.
            .wrap(from_fn(move |request, next| {
                api::overload::gate(queue_deadline, request, next)
            }))
            // Reads what an early answer (401, 429, 503...) left of a body, so
            // that the connection survives it.
            .wrap(from_fn(move |request, next| {
                api::drain::keep_alive(drain_bytes_max, request, next)
            }))
            .wrap(from_fn(metrics::track))
            .app_data(state.clone())
            .app_data(keys.clone())
            .app_data(limiter.clone())
            .app_data(metrics.clone())
            .app_data(feed.clone())
            .app_data(document.clone())
            .app_data(query_config())
            .app_data(path_config())
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics::endpoint))
            .route("/openapi.json", web::get().to(openapi))
            .route("/v1/feed", web::get().to(feed::ws::connect))
            .configure(api::configure)
            .default_service(web::to(not_found))
    })
    .max_connections(settings.http.connections_max)
    // Signals are handled by `run_until_stopped`, which must outlive the server to
    // write the final snapshots.
    .disable_signals()
    .shutdown_timeout(30);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    if settings.tls.enabled() {
        let (config, cert) = crate::tls::server_config(&settings.tls)?;
        crate::tls::reload_on_sighup(cert)?;
        return Ok(server.listen_rustls_0_23(listener, config)?.run());
    }
    Ok(server.listen(listener)?.run())
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _| {
        Problem::invalid_request(format!("bad query string: {error}")).into()
    })
}

fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|error, _| Problem::invalid_request(format!("bad path: {error}")).into())
}

/// What no route took: 405 with `Allow` for a path the server serves with other
/// methods, else 404.
pub(crate) async fn not_found(request: actix_web::HttpRequest) -> HttpResponse {
    let allowed = allowed_methods(request.path());
    if allowed.is_empty() {
        return Problem::new(404, "not_found", "Not found", "no such endpoint").response();
    }
    let allow = allowed.join(", ");
    let mut response = Problem::new(
        405,
        "method_not_allowed",
        "Method not allowed",
        format!(
            "{} is not served here; this path takes {allow}",
            request.method()
        ),
    )
    .response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Every (path template, upper-case methods) of the OpenAPI document, which
/// lists every route (a test holds it to docs/API.md).
fn route_table() -> &'static Vec<(Vec<String>, Vec<&'static str>)> {
    static TABLE: std::sync::OnceLock<Vec<(Vec<String>, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        // Paths and methods do not depend on the limits.
        let doc = served_openapi(&ApiLimits::default());
        let methods = [
            ("get", "GET"),
            ("put", "PUT"),
            ("post", "POST"),
            ("delete", "DELETE"),
            ("patch", "PATCH"),
        ];
        doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, item)| {
                        let segments = path.split('/').map(str::to_owned).collect();
                        let served = methods
                            .iter()
                            .filter(|(key, _)| item.get(*key).is_some())
                            .map(|(_, method)| *method)
                            .collect();
                        (segments, served)
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// The methods the server serves `path` with (none: no such path). A concrete
/// path is matched before a template (OpenAPI's rule, and the routes' order):
/// `/v1/payments/batch` is not a payment's path.
fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let literals = |template: &[String]| template.iter().filter(|t| !t.starts_with('{')).count();
    let matching: Vec<&(Vec<String>, Vec<&'static str>)> = route_table()
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    if t.starts_with('{') {
                        !s.is_empty()
                    } else {
                        t == s
                    }
                })
        })
        .collect();
    let most_concrete = matching.iter().map(|(t, _)| literals(t)).max();
    let mut allowed: Vec<&'static str> = matching
        .iter()
        .filter(|(template, _)| Some(literals(template)) == most_concrete)
        .flat_map(|(_, methods)| methods.iter().copied())
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    allowed
}

/// `GET /health`: the process is up.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "operations", security(()),
    responses((status = 200, description = r#"The process is up: `{"status":"ok"}`"#)))]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// How long `/ready` waits for storage to answer a ping.
const READY_STORAGE_TIMEOUT_MS: u64 = 1_000;

/// `GET /ready`: storage answers and every shard runs.
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "operations", security(()),
    responses((status = 200, description = r#"Storage answers and every shard runs: `{"status":"ready","shards":<count>}`"#),
              (status = 503, description = r#"`{"status":"not_ready","storage":"reachable"|"unreachable","shards_not_running":[{id, status}]}`"#)))]
async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let storage_ok = state
        .engine
        .storage_reachable(std::time::Duration::from_millis(READY_STORAGE_TIMEOUT_MS))
        .await;
    let shards = state.engine.shard_status();
    let not_running: Vec<_> = shards
        .iter()
        .filter(|s| s.state != surge_actors::engine::ShardState::Running)
        .map(|s| serde_json::json!({"id": s.id.0, "status": s.state.as_str()}))
        .collect();
    // A sink past its lag limit does not make the node unready (it still
    // serves), but it is named here, where the operator looks.
    let cdc_behind: Vec<&str> = state
        .cdc
        .sinks
        .iter()
        .filter(|sink| {
            sink.over_lag_limit
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .map(|sink| sink.name.as_str())
        .collect();
    let mut body = if storage_ok && not_running.is_empty() {
        serde_json::json!({"status": "ready", "shards": shards.len()})
    } else {
        serde_json::json!({
            "status": "not_ready",
            "storage": if storage_ok { "reachable" } else { "unreachable" },
            "shards_not_running": not_running,
        })
    };
    if !cdc_behind.is_empty() {
        body["cdc_over_lag_limit"] = cdc_behind.into();
    }
    if storage_ok && not_running.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "operations", security(()),
    responses((status = 200, description = "This OpenAPI 3 document")))]
async fn openapi(document: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// `/openapi.json` as served, encoded once when the server starts (it depends
/// only on the configured limits).
struct OpenApiDocument(web::Bytes);

/// The document `/openapi.json` serves, with the constraints of `limits`.
fn served_openapi(limits: &ApiLimits) -> serde_json::Value {
    let mut doc = api::ApiDoc::openapi();
    doc.info.title = "Surge".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let document = api::openapi::with_problems(serde_json::to_value(doc).unwrap_or_default());
    api::links::with_links(api::constraints::with_constraints(document, limits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn a_burst_of_clients_all_connect_before_the_server_accepts_any() {
        let listener = listen("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("bound");
        // More clients than std's backlog of 128. A connection attempt the kernel
        // drops is only retried after a second; none may be dropped.
        let clients: Vec<TcpStream> = (0..300)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("client {i} could not connect: {e}"))
            })
            .collect();
        assert_eq!(clients.len(), 300);
    }

    #[test]
    fn a_port_another_listener_holds_cannot_be_taken() {
        let first = listen("127.0.0.1:0").expect("a free port");
        let addr = first.local_addr().expect("bound");
        assert!(listen(addr).is_err());
    }
}
