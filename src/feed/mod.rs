//! Live feeds: the in-process bus that durable notices go through, the WebSocket
//! endpoint `GET /v1/feed`, and the Redis bridge that carries notices between nodes
//! and into a stream for downstream services.
//!
//! # Layout
//!
//! * [`topic`]: topic names and their parsing.
//! * [`hub`]: topic → connections, bounded per-connection queues, lag detection.
//! * [`ws`]: one task per WebSocket connection: subscriptions, snapshots, heartbeats.
//! * [`redis`]: publishes notices to Redis pub/sub and a capped stream, and
//!   delivers other nodes' notices to local subscribers.

pub mod hub;
pub mod redis;
pub mod topic;
pub mod ws;

use crate::configuration::FeedSettings;
use crate::metrics::must;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Feed metrics (registered in the server's registry).
#[derive(Clone)]
pub struct FeedMetrics {
    pub connections: IntGauge,
    pub subscriptions: IntGauge,
    pub events_sent: IntCounter,
    pub lagged_closes: IntCounter,
    pub delivery_delay: Histogram,
    pub redis_published: IntCounter,
    pub redis_dropped: IntCounter,
    pub redis_received: IntCounter,
}

impl FeedMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = Self {
            connections: must(IntGauge::new(
                "feed_connections",
                "Open WebSocket feed connections",
            )),
            subscriptions: must(IntGauge::new(
                "feed_subscriptions",
                "Active feed subscriptions",
            )),
            events_sent: must(IntCounter::new(
                "feed_events_sent_total",
                "Events sent to feed subscribers",
            )),
            lagged_closes: must(IntCounter::new(
                "feed_lagged_closes_total",
                "Feed connections closed because they fell behind their buffer",
            )),
            delivery_delay: must(Histogram::with_opts(
                HistogramOpts::new(
                    "feed_delivery_delay_seconds",
                    "From the change on its shard to its send on a feed connection",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )),
            redis_published: must(IntCounter::new(
                "redis_events_published_total",
                "Events published to Redis (pub/sub and stream)",
            )),
            redis_dropped: must(IntCounter::new(
                "redis_events_dropped_total",
                "Events not published to Redis because it was down, slow or the queue was full",
            )),
            redis_received: must(IntCounter::new(
                "redis_events_received_total",
                "Events of other nodes received from Redis pub/sub",
            )),
        };
        for collector in [
            Box::new(metrics.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.subscriptions.clone()),
            Box::new(metrics.events_sent.clone()),
            Box::new(metrics.lagged_closes.clone()),
            Box::new(metrics.delivery_delay.clone()),
            Box::new(metrics.redis_published.clone()),
            Box::new(metrics.redis_dropped.clone()),
            Box::new(metrics.redis_received.clone()),
        ] {
            must(registry.register(collector));
        }
        metrics
    }
}

/// What the feed endpoint needs.
pub struct FeedState {
    pub hub: Arc<hub::FeedHub>,
    pub settings: FeedSettings,
    pub metrics: FeedMetrics,
    /// Open connections, checked against `settings.connections_max`.
    pub connections: AtomicUsize,
}
