//! Change data capture: every durable change, in order, to downstream services.
//!
//! While a sink is configured, each shard stores its batch's notices beside the
//! batch's journal record, in the same transaction
//! (`JournalRecord::with_changes`), so a change becomes readable exactly when its
//! events are durable, and a change the API acknowledged is never missing. One
//! tailer per sink reads those rows per shard in order, in batches, turns each
//! notice into a [`ChangeMessage`], hands a batch to its sink, and only once the
//! sink confirmed it (publisher confirms, a Redis reply) stores its cursor for
//! that shard (`cdc_cursors`). Delivery is at least once: after a crash or an
//! outage, everything after the cursor goes again, with the same message ids.
//! The tailer runs on the server's runtime beside the shards and never holds
//! them up: the engine writes the changes whatever the sinks do.
//!
//! Journal pruning keeps rows a cursor has not passed, up to
//! `cdc.lag_limit_events` behind; a sink further behind is reported loudly
//! (metrics, an error log, `/ready` detail), and if rows it had not read were
//! pruned, their events are counted as skipped and logged: never silently.

pub mod amqp;
pub mod redis_stream;

use crate::configuration::Settings;
use crate::feed::hub::Delivery;
use crate::storage::changes::{ChangeLog, ChangeRow};
use futures::future::BoxFuture;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use surge_actors::journal::decode_changes;
use surge_actors::notice::Notice;
use surge_actors::ShardId;

/// Retry bounds for a sink or the journal database that failed.
const BACKOFF_MS_MIN: u64 = 100;
const BACKOFF_MS_MAX: u64 = 5_000;
/// How often a tailer reads each shard's head to report its lag.
const HEAD_EVERY_MS: u64 = 1_000;
/// A repeated failure is logged at most this often.
const LOG_EVERY_MS: u64 = 10_000;

/// One change, as every sink sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeMessage {
    /// Unique and stable across redeliveries: `<shard>-<first_seq>-<index>`, the
    /// journal record's shard and first sequence number and the change's index
    /// in it. Consumers deduplicate by it.
    pub id: String,
    /// `order.status`, `account.balance`, `item.stock`, `payment.status` or
    /// `reservation.status`.
    pub kind: String,
    /// The entity's feed topic (`order:<id>`, ..., `payment:<id>`,
    /// `reservation:<sku>/<id>`).
    pub topic: String,
    /// The entity's version after the change: consecutive per entity.
    pub seq: u64,
    pub at_ms: u64,
    /// `<kind>.<entity id>` (for reservations `<kind>.<sku>.<id>`).
    pub routing_key: String,
    /// JSON: the feed message's fields with `topic` and `seq`.
    pub body: String,
}

impl ChangeMessage {
    pub fn new(shard: ShardId, first_seq: u64, index: usize, notice: &Notice) -> Self {
        let delivery = Delivery::from_notice(notice);
        let kind = delivery
            .fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("change")
            .to_owned();
        let entity = delivery
            .topic
            .split_once(':')
            .map_or(delivery.topic.as_str(), |(_, id)| id)
            .replace('/', ".");
        let mut body = delivery.fields;
        body.insert("topic".into(), delivery.topic.clone().into());
        body.insert("seq".into(), delivery.version.into());
        Self {
            id: format!("{shard}-{first_seq}-{index}"),
            routing_key: format!("{kind}.{entity}"),
            kind,
            topic: delivery.topic,
            seq: delivery.version,
            at_ms: delivery.at_ms,
            body: Value::Object(body).to_string(),
        }
    }
}

/// Where change messages go. `deliver` resolves `Ok` only once every message of
/// the batch is confirmed; on an error the whole batch goes again later (so a
/// sink sees duplicates, never gaps), and the sink reconnects by itself.
pub trait Sink: Send + 'static {
    /// The cursor's name in `cdc_cursors`.
    fn name(&self) -> &str;
    fn deliver<'a>(
        &'a mut self,
        messages: &'a [ChangeMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// What `/admin/shards`, `/ready` and the metrics report of one sink and shard.
#[derive(Debug, Default)]
pub struct ShardLag {
    pub cursor: AtomicU64,
    pub head: AtomicU64,
    /// When the oldest change not yet confirmed was written (ms since the
    /// Unix epoch; 0: caught up). Its age is the lag, which keeps growing
    /// while a sink is down.
    pub oldest_unconfirmed_ms: AtomicU64,
}

impl ShardLag {
    /// Age of the oldest change not yet confirmed (0: caught up).
    pub fn lag_ms(&self) -> u64 {
        match self.oldest_unconfirmed_ms.load(Ordering::Relaxed) {
            0 => 0,
            oldest => surge_actors::engine::system_clock_ms().saturating_sub(oldest),
        }
    }
}

#[derive(Debug)]
pub struct SinkStatus {
    pub name: String,
    pub shards: Vec<ShardLag>,
    pub over_lag_limit: AtomicBool,
}

impl SinkStatus {
    pub fn lag_events(&self, shard: usize) -> u64 {
        let lag = &self.shards[shard];
        lag.head
            .load(Ordering::Relaxed)
            .saturating_sub(lag.cursor.load(Ordering::Relaxed))
    }
}

/// Every sink's status, shared with the HTTP side.
#[derive(Debug, Default)]
pub struct CdcStatus {
    pub sinks: Vec<Arc<SinkStatus>>,
}

#[derive(Clone)]
struct CdcMetrics {
    lag_events: IntGaugeVec,
    lag_seconds: IntGaugeVec,
    delivered: IntCounterVec,
    skipped: IntCounterVec,
    failures: IntCounterVec,
}

impl CdcMetrics {
    fn new(registry: &Registry) -> anyhow::Result<Self> {
        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGaugeVec> {
            let gauge = IntGaugeVec::new(Opts::new(name, help), &["sink", "shard"])?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let counter = |name: &str, help: &str| -> anyhow::Result<IntCounterVec> {
            let counter = IntCounterVec::new(Opts::new(name, help), &["sink"])?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        Ok(Self {
            lag_events: gauge(
                "cdc_lag_events",
                "Durable events a change data capture sink has not confirmed yet",
            )?,
            lag_seconds: gauge(
                "cdc_lag_seconds",
                "Age of the oldest change a sink has not confirmed (0: caught up)",
            )?,
            delivered: counter(
                "cdc_delivered_total",
                "Change messages a sink confirmed (redeliveries included)",
            )?,
            skipped: counter(
                "cdc_skipped_events_total",
                "Events whose changes a sink never got: pruned past the lag limit, \
                 or written while change data capture was off",
            )?,
            failures: counter(
                "cdc_failures_total",
                "Failed deliveries or journal reads of a sink (each retried)",
            )?,
        })
    }
}

/// `work`, failed if it takes longer than `limit_ms` (a sink's batch or connect).
pub(crate) async fn within<T>(
    what: &str,
    limit_ms: u64,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_millis(limit_ms), work)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("{what} took longer than {limit_ms} ms")))
}

/// How a tailer reads and batches.
#[derive(Debug, Clone)]
pub struct TailerOptions {
    pub batch_changes_max: usize,
    pub rows_per_read_max: usize,
    pub poll: Duration,
    pub lag_limit_events: u64,
}

impl TailerOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            batch_changes_max: settings.cdc.batch_changes_max.max(1),
            rows_per_read_max: settings.cdc.rows_per_read_max.max(1),
            poll: Duration::from_millis(settings.cdc.poll_ms.max(1)),
            lag_limit_events: settings.cdc.lag_limit_events,
        }
    }
}

/// The sinks the settings configure (their connections are made in the
/// background: an unreachable broker is retried, never fatal).
pub fn sinks(settings: &Settings) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if !settings.cdc.amqp.url.is_empty() {
        sinks.push(Box::new(amqp::AmqpSink::new(&settings.cdc.amqp)));
    }
    if !settings.redis.url.is_empty() {
        sinks.push(Box::new(redis_stream::RedisStreamSink::new(
            &settings.redis,
        )?));
    }
    Ok(sinks)
}

/// Starts one tailer per sink. Before the shards start: a sink without a
/// cursor for a shard starts at the shard's head, so every change from now on
/// reaches it (what was written before change data capture was on is not
/// replayed). Fails if the journal database cannot be read.
pub async fn start(
    log: Arc<dyn ChangeLog>,
    sinks: Vec<Box<dyn Sink>>,
    shards: u32,
    options: TailerOptions,
    registry: &Registry,
) -> anyhow::Result<Arc<CdcStatus>> {
    let metrics = CdcMetrics::new(registry)?;
    let mut status = CdcStatus::default();
    for sink in sinks {
        let mut cursors = Vec::with_capacity(shards as usize);
        for shard in (0..shards).map(ShardId) {
            let cursor = match log.cursor(sink.name(), shard).await? {
                Some(cursor) => cursor,
                None => {
                    let head = log.head(shard).await?;
                    log.store_cursor(sink.name(), shard, head).await?;
                    head
                }
            };
            cursors.push(cursor);
        }
        let sink_status = Arc::new(SinkStatus {
            name: sink.name().to_owned(),
            shards: cursors
                .iter()
                .map(|cursor| ShardLag {
                    cursor: AtomicU64::new(*cursor),
                    head: AtomicU64::new(*cursor),
                    oldest_unconfirmed_ms: AtomicU64::new(0),
                })
                .collect(),
            over_lag_limit: AtomicBool::new(false),
        });
        tracing::info!(sink = sink.name(), ?cursors, "change data capture started");
        let tailer = Tailer {
            sink,
            log: log.clone(),
            cursors,
            heads_read: vec![None; shards as usize],
            options: options.clone(),
            status: sink_status.clone(),
            metrics: metrics.clone(),
            last_log: None,
        };
        actix_web::rt::spawn(tailer.run());
        status.sinks.push(sink_status);
    }
    Ok(Arc::new(status))
}

struct Tailer {
    sink: Box<dyn Sink>,
    log: Arc<dyn ChangeLog>,
    cursors: Vec<u64>,
    heads_read: Vec<Option<Instant>>,
    options: TailerOptions,
    status: Arc<SinkStatus>,
    metrics: CdcMetrics,
    last_log: Option<Instant>,
}

fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(
        Duration::from_millis(BACKOFF_MS_MIN),
        Duration::from_millis(BACKOFF_MS_MAX),
    )
}

impl Tailer {
    async fn run(mut self) {
        let mut delay = Duration::from_millis(BACKOFF_MS_MIN);
        loop {
            let mut progressed = false;
            let mut failed = false;
            for index in 0..self.cursors.len() {
                match self.step(index).await {
                    Ok(moved) => progressed |= moved,
                    Err(error) => {
                        failed = true;
                        self.failed(&format!("shard {index}: {error:#}"));
                    }
                }
            }
            if failed {
                tokio::time::sleep(delay).await;
                delay = backoff(delay);
            } else {
                delay = Duration::from_millis(BACKOFF_MS_MIN);
                if !progressed {
                    tokio::time::sleep(self.options.poll).await;
                }
            }
        }
    }

    fn failed(&mut self, error: &str) {
        self.metrics
            .failures
            .with_label_values(&[&self.status.name])
            .inc();
        if self.should_log() {
            tracing::error!(sink = %self.status.name, error, "change data capture is held up; retrying");
        }
    }

    fn should_log(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= Duration::from_millis(LOG_EVERY_MS));
        if due {
            self.last_log = Some(now);
        }
        due
    }

    /// Delivers the next batch of one shard's changes; whether there was one.
    async fn step(&mut self, index: usize) -> anyhow::Result<bool> {
        let shard = ShardId(index as u32);
        let cursor = self.cursors[index];
        self.read_head(index).await?;
        let rows = self
            .log
            .read_changes(shard, cursor, self.options.rows_per_read_max)
            .await?;
        let Some(first) = rows.first() else {
            self.caught_up(index);
            return Ok(false);
        };
        if first.first_seq > cursor + 1 {
            self.skipped(
                index,
                first.first_seq - cursor - 1,
                "pruned before this sink read them (it was past cdc.lag_limit_events)",
            );
        }
        let oldest_ms = first.written_at_ms;
        let (messages, through) = self.messages(index, &rows)?;
        let status = self.status.clone();
        let lag = &status.shards[index];
        lag.oldest_unconfirmed_ms
            .store(oldest_ms.max(1), Ordering::Relaxed);
        self.deliver(&messages).await;
        self.log
            .store_cursor(&self.status.name, shard, through)
            .await?;
        self.cursors[index] = through;
        lag.cursor.store(through, Ordering::Relaxed);
        lag.head.fetch_max(through, Ordering::Relaxed);
        self.metrics
            .delivered
            .with_label_values(&[&self.status.name])
            .inc_by(messages.len() as u64);
        self.report(index);
        Ok(true)
    }

    /// The messages of the rows, whole rows up to the batch size (at least one
    /// row), and the sequence number they end at.
    fn messages(
        &mut self,
        index: usize,
        rows: &[ChangeRow],
    ) -> anyhow::Result<(Vec<ChangeMessage>, u64)> {
        let shard = ShardId(index as u32);
        let mut messages = Vec::new();
        let mut through = self.cursors[index];
        for row in rows {
            if messages.len() >= self.options.batch_changes_max {
                break;
            }
            match &row.changes {
                Some(bytes) => {
                    // A row that does not decode stops this shard's delivery
                    // (retried, and logged, forever): never skipped.
                    let notices = decode_changes(shard, row.first_seq, bytes)?;
                    messages.extend(
                        notices
                            .iter()
                            .enumerate()
                            .map(|(i, notice)| ChangeMessage::new(shard, row.first_seq, i, notice)),
                    );
                }
                None => self.skipped(
                    index,
                    row.last_seq + 1 - row.first_seq,
                    "written while change data capture was off",
                ),
            }
            through = row.last_seq;
        }
        Ok((messages, through))
    }

    /// Hands the batch to the sink until it confirms it.
    async fn deliver(&mut self, messages: &[ChangeMessage]) {
        if messages.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(BACKOFF_MS_MIN);
        while let Err(error) = self.sink.deliver(messages).await {
            self.failed(&format!("{error:#}"));
            // The lag of every shard keeps being reported (and the lag limit
            // watched) while the sink is down.
            for index in 0..self.cursors.len() {
                if let Err(error) = self.read_head(index).await {
                    self.failed(&format!("shard {index}: {error:#}"));
                }
            }
            tokio::time::sleep(delay).await;
            delay = backoff(delay);
        }
    }

    async fn read_head(&mut self, index: usize) -> anyhow::Result<()> {
        let due = self.heads_read[index]
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(HEAD_EVERY_MS));
        if due {
            let head = self.log.head(ShardId(index as u32)).await?;
            self.status.shards[index]
                .head
                .fetch_max(head, Ordering::Relaxed);
            self.heads_read[index] = Some(Instant::now());
            self.report(index);
        }
        Ok(())
    }

    fn caught_up(&mut self, index: usize) {
        let lag = &self.status.shards[index];
        lag.oldest_unconfirmed_ms.store(0, Ordering::Relaxed);
        lag.head.fetch_max(self.cursors[index], Ordering::Relaxed);
        self.report(index);
    }

    fn skipped(&mut self, index: usize, events: u64, why: &str) {
        self.metrics
            .skipped
            .with_label_values(&[&self.status.name])
            .inc_by(events);
        tracing::error!(
            sink = %self.status.name,
            shard = index,
            after = self.cursors[index],
            events,
            why,
            "change data capture skipped the changes of these events"
        );
    }

    /// Metrics and the lag limit's alarm.
    fn report(&mut self, index: usize) {
        let name = self.status.name.clone();
        let shard = index.to_string();
        let lag_events = self.status.lag_events(index);
        self.metrics
            .lag_events
            .with_label_values(&[&name, &shard])
            .set(lag_events as i64);
        let lag_ms = self.status.shards[index].lag_ms();
        self.metrics
            .lag_seconds
            .with_label_values(&[&name, &shard])
            .set((lag_ms / 1_000) as i64);
        let over = (0..self.cursors.len())
            .any(|i| self.status.lag_events(i) > self.options.lag_limit_events);
        let was = self.status.over_lag_limit.swap(over, Ordering::Relaxed);
        if over && (!was || self.should_log()) {
            tracing::error!(
                sink = %name,
                lag_limit_events = self.options.lag_limit_events,
                "a change data capture sink is past its lag limit: journal pruning no longer \
                 waits for it, and changes it has not read may be skipped"
            );
        }
    }
}
