//! The handle the server holds: starts the shard actors on their own arbiters and
//! routes commands, queries and batches to them.

use crate::actor::{Control, Read, Responder, ShardActor, ShardSettings, Submit};
pub use crate::actor::{ControlReply, ControlRequest};
use crate::admission::Admission;
use crate::archive::ArchiveKey;
use crate::command::{Command, Query, Reply};
use crate::journal::Journal;
use crate::rejection::Rejection;
use crate::router::{Router, ShardId};
use crate::shard::ShardLimits;
pub use crate::status::{
    EngineError, EngineObserver, NoObserver, ShardState, ShardStats, ShardStatus,
};
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// Engine settings (the server fills them from configuration).
#[derive(Clone)]
pub struct EngineConfig {
    pub shards: u32,
    /// Messages a shard's mailbox holds before callers get `Overloaded`.
    pub mailbox_capacity: usize,
    /// How often a shard checks its timers (expiries, resends).
    pub tick_interval_ms: u64,
    /// A journal write slower than this fails the batch with `Retry`.
    pub journal_timeout_ms: u64,
    /// How long a caller waits for its answer before giving up with `Retry`.
    pub reply_timeout_ms: u64,
    /// Load shedding: client work is admitted so that it is answered within this
    /// (`crate::admission`); `0`: off.
    pub queue_deadline_ms: u64,
    /// Threads the shards run on (`0`: one per CPU, at most one per shard).
    pub shard_threads: usize,
    pub hash_seed: u64,
    pub snapshot_every_events: u64,
    pub snapshot_interval_s: u64,
    /// See `ShardSettings::flush_at_once_events_min`.
    pub flush_at_once_events_min: usize,
    pub limits: ShardLimits,
    /// Wall clock in ms since the Unix epoch (tests inject their own).
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub observer: Arc<dyn EngineObserver>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            mailbox_capacity: 4_096,
            tick_interval_ms: 20,
            journal_timeout_ms: 5_000,
            reply_timeout_ms: 10_000,
            queue_deadline_ms: 0,
            shard_threads: 0,
            hash_seed: 0,
            snapshot_every_events: 100_000,
            snapshot_interval_s: 300,
            flush_at_once_events_min: FLUSH_AT_ONCE_EVENTS_MIN_DEFAULT,
            limits: ShardLimits::default(),
            clock: Arc::new(system_clock_ms),
            observer: Arc::new(NoObserver),
        }
    }
}

/// Events in an open batch that make it go to the journal at once when the journal
/// is idle: a client batch of payments, not a few single requests.
pub const FLUSH_AT_ONCE_EVENTS_MIN_DEFAULT: usize = 4_096;

/// Milliseconds since the Unix epoch from the system clock.
pub fn system_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Inner {
    router: Router,
    shards: Vec<(Addr<ShardActor>, Arc<ShardStats>)>,
    reply_timeout: Duration,
    admission: Admission,
    observer: Arc<dyn EngineObserver>,
    journal: Arc<dyn Journal>,
    open_entities_max: usize,
    _arbiters: Vec<ArbiterHandle>,
}

/// Cloneable handle to the running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Counts messages in flight to each shard's mailbox for the stats, on top of
/// whatever observer the server installed.
struct MailboxCounter {
    stats: Vec<Arc<ShardStats>>,
    inner: Arc<dyn EngineObserver>,
}

impl EngineObserver for MailboxCounter {
    fn batch_flushed(&self, shard: ShardId, events: usize, elapsed: Duration, ok: bool) {
        self.inner.batch_flushed(shard, events, elapsed, ok);
    }
    fn recovered(&self, shard: ShardId, elapsed: Duration, events_replayed: usize) {
        self.inner.recovered(shard, elapsed, events_replayed);
    }
    fn mailbox_sent(&self, shard: ShardId) {
        self.stats[shard.0 as usize]
            .mailbox_len
            .fetch_add(1, Ordering::Relaxed);
        self.inner.mailbox_sent(shard);
    }
    fn snapshot_written(&self, shard: ShardId, bytes: usize, elapsed: Duration) {
        self.inner.snapshot_written(shard, bytes, elapsed);
    }
    fn notices(&self, shard: ShardId, notices: &[crate::notice::Notice]) {
        self.inner.notices(shard, notices);
    }
    fn mailbox_received(&self, shard: ShardId) {
        let counter = &self.stats[shard.0 as usize].mailbox_len;
        // Saturating: a message sent before a restart may be counted only once.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.inner.mailbox_received(shard);
    }
}

impl Engine {
    /// Starts every shard on its arbiter. Must run inside an actix `System`.
    /// Shards recover from the journal before they handle their first message.
    pub fn start(config: EngineConfig, journal: Arc<dyn Journal>) -> Engine {
        let router = Router::new(config.shards);
        let threads = match config.shard_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(config.shards as usize)
        .max(1);
        let arbiters: Vec<ArbiterHandle> = (0..threads).map(|_| Arbiter::new().handle()).collect();
        let stats: Vec<Arc<ShardStats>> = (0..config.shards)
            .map(|_| Arc::new(ShardStats::default()))
            .collect();
        let observer: Arc<dyn EngineObserver> = Arc::new(MailboxCounter {
            stats: stats.clone(),
            inner: config.observer.clone(),
        });
        let settings = Arc::new(ShardSettings {
            router,
            limits: config.limits.clone(),
            mailbox_capacity: config.mailbox_capacity,
            tick_interval_ms: config.tick_interval_ms,
            journal_timeout_ms: config.journal_timeout_ms,
            hash_seed: config.hash_seed,
            snapshot_every_events: config.snapshot_every_events.max(1),
            snapshot_interval_s: config.snapshot_interval_s,
            flush_at_once_events_min: config.flush_at_once_events_min.max(1),
            clock: config.clock.clone(),
            observer: observer.clone(),
        });
        let peers: Arc<OnceLock<Vec<Addr<ShardActor>>>> = Arc::new(OnceLock::new());
        let shards: Vec<(Addr<ShardActor>, Arc<ShardStats>)> = (0..config.shards)
            .map(|index| {
                let id = ShardId(index);
                let (settings, journal, peers, shard_stats) = (
                    settings.clone(),
                    journal.clone(),
                    peers.clone(),
                    stats[index as usize].clone(),
                );
                let arbiter = &arbiters[index as usize % threads];
                let addr = Supervisor::start_in_arbiter(arbiter, move |_ctx| {
                    ShardActor::new(id, settings, journal, peers, shard_stats)
                });
                (addr, stats[index as usize].clone())
            })
            .collect();
        // Set once, before any client can reach a shard.
        let _ = peers.set(shards.iter().map(|(addr, _)| addr.clone()).collect());
        Engine {
            inner: Arc::new(Inner {
                router,
                shards,
                reply_timeout: Duration::from_millis(config.reply_timeout_ms),
                admission: Admission::new(Duration::from_millis(config.queue_deadline_ms)),
                observer,
                journal,
                open_entities_max: config.limits.open_entities_max,
                _arbiters: arbiters,
            }),
        }
    }

    /// Whether client work would be refused as overloaded now: the front door
    /// asks before it reads a request (see `crate::admission`).
    pub fn saturated(&self) -> bool {
        self.inner.admission.saturated()
    }

    /// Client requests in flight, the admission limit, and requests refused.
    pub fn admission_stats(&self) -> (u64, u64, u64) {
        self.inner.admission.stats()
    }

    pub fn router(&self) -> Router {
        self.inner.router
    }

    /// Runs one command on its shard.
    pub async fn execute(&self, command: Command) -> Result<Reply, EngineError> {
        // An order's answer may wait for its saga (`wait_ms`): not a sample.
        let sampled = !matches!(command, Command::CreateOrder { .. });
        let Some(_taken) = self.inner.admission.admit(sampled) else {
            return Err(EngineError::Overloaded);
        };
        let shard = self.inner.router.shard_for(command.route_key());
        let (responder, receiver) = oneshot::channel();
        self.submit(shard, vec![(command, responder)])?;
        self.wait(receiver).await
    }

    /// Runs many commands: one message per shard, answers in the order given.
    pub async fn execute_batch(&self, commands: Vec<Command>) -> Vec<Result<Reply, EngineError>> {
        let Some(_taken) = self.inner.admission.admit(false) else {
            return vec![Err(EngineError::Overloaded); commands.len()];
        };
        let shards = self.inner.shards.len();
        let mut per_shard: Vec<Vec<(Command, Responder)>> =
            (0..shards).map(|_| Vec::new()).collect();
        let mut receivers = Vec::with_capacity(commands.len());
        let mut shard_of = Vec::with_capacity(commands.len());
        for command in commands {
            let shard = self.inner.router.shard_for(command.route_key());
            let (responder, receiver) = oneshot::channel();
            per_shard[shard.0 as usize].push((command, responder));
            receivers.push(receiver);
            shard_of.push(shard);
        }
        let mut refused = vec![None; shards];
        for (index, items) in per_shard.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            if let Err(error) = self.submit(ShardId(index as u32), items) {
                refused[index] = Some(error);
            }
        }
        // Awaited in order under one deadline: by the time the first answer is in,
        // most others are too, so only the few still pending arm a timer (a timer
        // and a join slot per command cost more than the shard's work on it).
        let deadline = tokio::time::Instant::now() + self.inner.reply_timeout;
        let mut replies = Vec::with_capacity(receivers.len());
        for (receiver, shard) in receivers.into_iter().zip(shard_of) {
            replies.push(match refused[shard.0 as usize] {
                Some(error) => Err(error),
                None => wait_until(deadline, receiver).await,
            });
        }
        replies
    }

    /// Answers a read. A payment, order or reservation is read from the archive
    /// first, so a read of one that has left memory never waits on its shard;
    /// one the archive does not have yet is asked of the shard, and if it left
    /// memory in between, read from the archive again.
    pub async fn query(&self, query: Query) -> Result<Reply, EngineError> {
        let Some(_taken) = self.inner.admission.admit(true) else {
            return Err(EngineError::Overloaded);
        };
        let Some(key) = query.archive_key() else {
            return self.ask_shard(query).await;
        };
        if let Some(reply) = self.read_archived(&key).await? {
            return Ok(reply);
        }
        let reply = self.ask_shard(query).await?;
        let not_found = matches!(
            reply.rejection(),
            Some(
                Rejection::PaymentNotFound
                    | Rejection::OrderNotFound
                    | Rejection::ReservationNotFound
            )
        );
        if not_found {
            if let Some(reply) = self.read_archived(&key).await? {
                return Ok(reply);
            }
        }
        Ok(reply)
    }

    async fn read_archived(&self, key: &ArchiveKey) -> Result<Option<Reply>, EngineError> {
        let lookup = self.inner.journal.lookup(vec![key.clone()]);
        match tokio::time::timeout(self.inner.reply_timeout, lookup).await {
            Ok(Ok(found)) => Ok(found
                .into_iter()
                .find_map(|(_, entity)| entity)
                .and_then(|entity| Reply::of_archived(&entity))),
            Ok(Err(error)) => {
                tracing::warn!(%error, "archive read failed");
                Err(EngineError::Retry)
            }
            Err(_) => Err(EngineError::Retry),
        }
    }

    async fn ask_shard(&self, query: Query) -> Result<Reply, EngineError> {
        let shard = self.inner.router.shard_for(query.route_key());
        let (responder, receiver) = oneshot::channel();
        let (addr, _) = &self.inner.shards[shard.0 as usize];
        self.inner.observer.mailbox_sent(shard);
        if let Err(error) = addr.try_send(Read {
            query,
            reply: responder,
            sent_at: std::time::Instant::now(),
        }) {
            self.inner.observer.mailbox_received(shard);
            return Err(send_error(&error));
        }
        self.wait(receiver).await
    }

    /// Every shard's status, read without disturbing the shards.
    pub fn shard_status(&self) -> Vec<ShardStatus> {
        self.inner
            .shards
            .iter()
            .enumerate()
            .map(|(index, (_, stats))| ShardStatus {
                id: ShardId(index as u32),
                state: stats.state(),
                restarts: stats.restarts.load(Ordering::Relaxed),
                last_seq: stats.last_seq.load(Ordering::Relaxed),
                snapshot_seq: stats.snapshot_seq.load(Ordering::Relaxed),
                mailbox_len: stats.mailbox_len.load(Ordering::Relaxed),
                queue_delay_us: stats.queue_delay_us.load(Ordering::Relaxed),
                accounts: stats.accounts.load(Ordering::Relaxed),
                items: stats.items.load(Ordering::Relaxed),
                payments: stats.payments.load(Ordering::Relaxed),
                orders: stats.orders.load(Ordering::Relaxed),
                open_entities: stats.open_entities.load(Ordering::Relaxed),
                open_entities_max: self.inner.open_entities_max as u64,
                tables: stats.tables(),
            })
            .collect()
    }

    /// Sends an operator request to one shard and waits for its answer.
    pub async fn control(
        &self,
        shard: ShardId,
        request: ControlRequest,
    ) -> Result<ControlReply, EngineError> {
        let Some((addr, _)) = self.inner.shards.get(shard.0 as usize) else {
            return Err(EngineError::ShuttingDown);
        };
        let (reply, receiver) = oneshot::channel();
        // Operator requests are rare and must get through a busy mailbox, so they
        // wait for room instead of failing with Overloaded.
        addr.send(Control { request, reply })
            .await
            .map_err(|_| EngineError::ShuttingDown)?;
        receiver.await.unwrap_or(Err(EngineError::Retry))
    }

    /// Graceful shutdown of every shard: new writes are refused, each shard writes
    /// a final snapshot of its durable state. Returns the shards that failed to.
    pub async fn shutdown(&self) -> Vec<ShardId> {
        let shards = (0..self.inner.shards.len() as u32).map(ShardId);
        let results = futures::future::join_all(
            shards.map(|id| async move { (id, self.control(id, ControlRequest::Shutdown).await) }),
        )
        .await;
        results
            .into_iter()
            .filter_map(|(id, result)| match result {
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(shard = %id, %error, "final snapshot failed");
                    Some(id)
                }
            })
            .collect()
    }

    /// Whether the journal's storage answers within `timeout`.
    pub async fn storage_reachable(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.inner.journal.ping()).await,
            Ok(Ok(()))
        )
    }

    /// True when every shard is running.
    pub fn is_ready(&self) -> bool {
        self.inner
            .shards
            .iter()
            .all(|(_, stats)| stats.state() == ShardState::Running)
    }

    fn submit(&self, shard: ShardId, items: Vec<(Command, Responder)>) -> Result<(), EngineError> {
        let (addr, _) = &self.inner.shards[shard.0 as usize];
        self.inner.observer.mailbox_sent(shard);
        let sent_at = std::time::Instant::now();
        addr.try_send(Submit { items, sent_at }).map_err(|error| {
            self.inner.observer.mailbox_received(shard);
            send_error(&error)
        })
    }

    async fn wait(
        &self,
        receiver: oneshot::Receiver<Result<Reply, EngineError>>,
    ) -> Result<Reply, EngineError> {
        wait_until(
            tokio::time::Instant::now() + self.inner.reply_timeout,
            receiver,
        )
        .await
    }
}

/// A shard's answer, or `Retry` if the shard dropped the request (it restarted
/// with it in flight) or did not answer by `deadline`.
async fn wait_until(
    deadline: tokio::time::Instant,
    receiver: oneshot::Receiver<Result<Reply, EngineError>>,
) -> Result<Reply, EngineError> {
    match tokio::time::timeout_at(deadline, receiver).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) | Err(_) => Err(EngineError::Retry),
    }
}

fn send_error<M>(error: &SendError<M>) -> EngineError {
    match error {
        SendError::Full(_) => EngineError::Overloaded,
        SendError::Closed(_) => EngineError::ShuttingDown,
    }
}
