//! The Redis bridge: every durable notice of this node goes to a Redis pub/sub
//! channel (so that feed clients on any node see it); notices other nodes
//! publish are delivered to this node's subscribers. (The stream for downstream
//! services, `redis.stream_key`, is written by change data capture from the
//! journal, losslessly: `crate::cdc::redis_stream`.)
//!
//! Redis is never on the engine's path: notices are handed over through a bounded
//! queue that is never waited on. When Redis is down or slow, what does not fit is
//! dropped, counted (`redis_events_dropped_total`) and logged, and the bridge
//! reconnects with backoff; local feeds keep working throughout, and a feed
//! client that missed a change resubscribes for a snapshot.

use super::hub::{Delivery, FeedHub, Forward, Outgoing};
use super::FeedMetrics;
use crate::configuration::RedisSettings;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most notices written to Redis in one pipelined round trip.
const PIPELINE_EVENTS_MAX: usize = 512;
/// Reconnection backoff bounds.
const BACKOFF_MS_MIN: u64 = 100;
const BACKOFF_MS_MAX: u64 = 5_000;
/// A Redis command slower than this counts as a failure (and its events as dropped).
const COMMAND_TIMEOUT_MS: u64 = 2_000;

/// What goes over the pub/sub channel.
#[derive(Debug, Serialize, Deserialize)]
struct WireEvent {
    node: String,
    delivery: Delivery,
}

pub struct RedisBridge {
    queue: mpsc::Sender<Outgoing>,
    metrics: FeedMetrics,
    /// Drops since the last log line, so that an outage logs once a second, not
    /// once per event.
    dropped_unlogged: AtomicU64,
    last_drop_log_ms: AtomicU64,
}

impl RedisBridge {
    fn dropped(&self, count: u64, why: &str) {
        self.metrics.redis_dropped.inc_by(count);
        let unlogged = self.dropped_unlogged.fetch_add(count, Ordering::Relaxed) + count;
        let now_ms = surge_actors::engine::system_clock_ms();
        let last = self.last_drop_log_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1_000
            && self
                .last_drop_log_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.dropped_unlogged.store(0, Ordering::Relaxed);
            tracing::warn!(
                dropped = unlogged,
                why,
                "events not published to Redis; local feeds are unaffected"
            );
        }
    }
}

impl Forward for RedisBridge {
    fn forward(&self, deliveries: &[Outgoing]) {
        for delivery in deliveries {
            if self.queue.try_send(delivery.clone()).is_err() {
                self.dropped(1, "the Redis queue is full (Redis down or slow)");
            }
        }
    }
}

/// Starts the publisher and subscriber tasks. Fails only on a malformed URL: an
/// unreachable Redis is retried in the background.
pub fn start(
    settings: &RedisSettings,
    hub: Arc<FeedHub>,
    metrics: FeedMetrics,
) -> anyhow::Result<Arc<RedisBridge>> {
    let client = redis::Client::open(settings.url.as_str())
        .map_err(|e| anyhow::anyhow!("invalid redis.url: {e}"))?;
    let node = if settings.node_id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        settings.node_id.clone()
    };
    let (queue, receiver) = mpsc::channel(settings.queue_events_max.max(1));
    let bridge = Arc::new(RedisBridge {
        queue,
        metrics: metrics.clone(),
        dropped_unlogged: AtomicU64::new(0),
        last_drop_log_ms: AtomicU64::new(0),
    });
    let publisher = Publisher {
        client: client.clone(),
        node: node.clone(),
        channel: settings.channel.clone(),
        bridge: bridge.clone(),
    };
    actix_web::rt::spawn(publisher.run(receiver));
    actix_web::rt::spawn(subscribe(
        client,
        node,
        settings.channel.clone(),
        hub,
        metrics,
    ));
    tracing::info!(channel = %settings.channel, "Redis feed bridge started");
    Ok(bridge)
}

fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(
        Duration::from_millis(BACKOFF_MS_MIN),
        Duration::from_millis(BACKOFF_MS_MAX),
    )
}

struct Publisher {
    client: redis::Client,
    node: String,
    channel: String,
    bridge: Arc<RedisBridge>,
}

impl Publisher {
    async fn run(self, mut receiver: mpsc::Receiver<Outgoing>) {
        let mut delay = Duration::from_millis(BACKOFF_MS_MIN);
        let mut connection = None;
        let mut batch = Vec::with_capacity(PIPELINE_EVENTS_MAX);
        loop {
            if receiver.recv_many(&mut batch, PIPELINE_EVENTS_MAX).await == 0 {
                return; // The engine is gone.
            }
            if connection.is_none() {
                match self.client.get_multiplexed_async_connection().await {
                    Ok(new) => {
                        tracing::info!("connected to Redis for publishing");
                        delay = Duration::from_millis(BACKOFF_MS_MIN);
                        connection = Some(new);
                    }
                    Err(error) => {
                        self.bridge
                            .dropped(batch.len() as u64, "Redis is unreachable");
                        tracing::debug!(%error, "Redis connect failed");
                        batch.clear();
                        tokio::time::sleep(delay).await;
                        delay = backoff(delay);
                        continue;
                    }
                }
            }
            let Some(open) = connection.as_mut() else {
                continue;
            };
            let pipeline = self.pipeline(&batch);
            let sent = tokio::time::timeout(
                Duration::from_millis(COMMAND_TIMEOUT_MS),
                pipeline.query_async::<()>(open),
            )
            .await;
            match sent {
                Ok(Ok(())) => self
                    .bridge
                    .metrics
                    .redis_published
                    .inc_by(batch.len() as u64),
                Ok(Err(error)) => {
                    self.bridge
                        .dropped(batch.len() as u64, "a Redis write failed");
                    tracing::debug!(%error, "Redis publish failed; reconnecting");
                    connection = None;
                }
                Err(_) => {
                    self.bridge
                        .dropped(batch.len() as u64, "a Redis write timed out");
                    connection = None;
                }
            }
            batch.clear();
        }
    }

    fn pipeline(&self, batch: &[Outgoing]) -> redis::Pipeline {
        let mut pipeline = redis::pipe();
        for delivery in batch {
            let wire = WireEvent {
                node: self.node.clone(),
                delivery: Delivery::clone(delivery),
            };
            // Plain data: serializing to a String cannot fail.
            let payload = serde_json::to_string(&wire).unwrap_or_default();
            pipeline
                .cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .ignore();
        }
        pipeline
    }
}

/// Delivers other nodes' notices to local subscribers, reconnecting forever.
async fn subscribe(
    client: redis::Client,
    node: String,
    channel: String,
    hub: Arc<FeedHub>,
    metrics: FeedMetrics,
) {
    let mut delay = Duration::from_millis(BACKOFF_MS_MIN);
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::debug!(%error, "Redis subscriber cannot connect; retrying");
                tokio::time::sleep(delay).await;
                delay = backoff(delay);
                continue;
            }
        };
        if let Err(error) = pubsub.subscribe(&channel).await {
            tracing::warn!(%error, "Redis SUBSCRIBE failed; retrying");
            tokio::time::sleep(delay).await;
            delay = backoff(delay);
            continue;
        }
        tracing::info!(%channel, "subscribed to Redis for other nodes' events");
        delay = Duration::from_millis(BACKOFF_MS_MIN);
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            let Ok(wire) = serde_json::from_str::<WireEvent>(&payload) else {
                tracing::warn!("ignoring a malformed event on the Redis channel");
                continue;
            };
            // This node's own events already went to its subscribers.
            if wire.node != node {
                metrics.redis_received.inc();
                hub.deliver(&Arc::new(wire.delivery));
            }
        }
        tracing::warn!("Redis subscription lost; reconnecting");
        tokio::time::sleep(delay).await;
    }
}
