//! Surge's server: the adapter around the engine in `surge-actors`. It reads
//! settings, opens durable storage, starts the shards, and serves the HTTP API.
//!
//! # Layout
//!
//! * [`configuration`]: layered settings (defaults, environment file, env vars).
//! * [`startup`]: builds the application and its HTTP server; graceful shutdown.
//! * [`api`]: the routes of docs/API.md, parsing at the edge, auth, problem documents.
//! * [`feed`]: live feeds: the event bus, the WebSocket endpoint, the Redis bridge.
//! * [`storage`]: the PostgreSQL and SQLite journals with group commit.
//! * [`metrics`]: Prometheus metrics for HTTP and the engine.
//! * [`rate_limit`]: per-subject GCRA limits, shared through Redis when it is configured.
//! * [`tls`]: TLS 1.3 for the API and the feed, reloaded on SIGHUP.
//! * [`telemetry`]: structured logging.
//! * [`cli`]: the command line of the `surge` binary.
//! * [`bench`](mod@bench): `surge bench`, end-to-end load scenarios, baseline and reports
//!   (cargo feature `bench`, on by default; the Docker image is built without it).

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cdc;
pub mod cli;
pub mod configuration;
pub mod feed;
pub mod fuzzing;
pub mod metrics;
pub mod rate_limit;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tls;
