//! The shard actor: owns one [`ShardCore`], drains its mailbox into batches, writes
//! each batch to the journal in one append (group commit), and only then releases
//! the batch's replies and messages. Runs under `actix::Supervisor`.
//!
//! Writes are pipelined: while one batch is being written the shard goes on
//! handling its mailbox into the next, which is written as soon as the first is
//! durable (one write in flight per shard, so the journal stays in order). A read
//! is answered from the state as it arrives and released with the batch whose
//! changes that state includes, so no client ever sees state that is not durable.
//! A panic in a handler is caught, the actor stops, and the supervisor restarts
//! it: `started` then rebuilds the state from the journal, and clients whose
//! requests were in flight get [`EngineError::Retry`].

use crate::command::{Command, Query, Reply};
use crate::journal::{Journal, JournalError, JournalRecord};
use crate::recovery::panic_message;
use crate::recovery::recover_state;
use crate::router::{Router, ShardId};
use crate::shard::{Batch, ShardCore, ShardLimits, ShardMessage, Token};
use crate::status::{EngineError, EngineObserver, ShardState, ShardStats};
use actix::prelude::*;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Where a client's answer goes.
pub type Responder = oneshot::Sender<Result<Reply, EngineError>>;

/// Client commands for this shard, each with its own reply channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    pub items: Vec<(Command, Responder)>,
    /// When it joined the mailbox (`/metrics` shows how long the last waited).
    pub sent_at: Instant,
}

/// A read of one entity.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Read {
    pub query: Query,
    pub reply: Responder,
    /// When it joined the mailbox (`/metrics` shows how long the last waited).
    pub sent_at: Instant,
}

/// Saga messages from other shards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub messages: Vec<ShardMessage>,
}

/// What an operator asks of a shard.
pub enum ControlRequest {
    /// Write a snapshot now; answers with its sequence number.
    Snapshot,
    /// Stop and recover from the journal; answers once the shard runs again.
    Restart,
    /// Crash the shard (fault injection); the supervisor restarts it.
    Panic,
    /// Graceful shutdown: flush, write a final snapshot, answer.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlReply {
    Snapshot {
        snapshot_seq: u64,
    },
    Restarted {
        recovered_seq: u64,
        recovery_ms: u64,
    },
    Panicked,
    ShutDown {
        snapshot_seq: u64,
    },
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Control {
    pub request: ControlRequest,
    pub reply: oneshot::Sender<Result<ControlReply, EngineError>>,
}

type ControlResponder = oneshot::Sender<Result<ControlReply, EngineError>>;

/// Internal: the mailbox is drained, write the batch.
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// Settings every shard actor shares.
pub struct ShardSettings {
    pub router: Router,
    pub limits: ShardLimits,
    pub mailbox_capacity: usize,
    pub tick_interval_ms: u64,
    pub journal_timeout_ms: u64,
    pub hash_seed: u64,
    /// Take a snapshot after this many events since the last one...
    pub snapshot_every_events: u64,
    /// ...or after this many seconds, if anything happened.
    pub snapshot_interval_s: u64,
    /// An open batch with at least this many events is written as soon as the
    /// journal is idle, without waiting for the mailbox to drain (see
    /// `schedule_flush`); below it, small inputs keep group-committing.
    pub flush_at_once_events_min: usize,
    pub clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub observer: Arc<dyn EngineObserver>,
}

pub struct ShardActor {
    id: ShardId,
    settings: Arc<ShardSettings>,
    journal: Arc<dyn Journal>,
    peers: Arc<OnceLock<Vec<Addr<ShardActor>>>>,
    stats: Arc<ShardStats>,
    /// None while recovering.
    core: Option<ShardCore>,
    epoch: u64,
    durable_seq: u64,
    responders: HashMap<Token, Responder>,
    next_token: Token,
    /// Answers to reads that saw the open batch's changes: released with it.
    reads_open: Vec<(Reply, Responder)>,
    /// Answers to reads that saw the batch being written: released with it.
    reads_writing: Vec<(Reply, Responder)>,
    /// A batch's journal write is in flight.
    writing: bool,
    /// An operator asked for a restart while a write was in flight.
    restart_after_write: bool,
    flush_scheduled: bool,
    /// A journal write failed: the journal may hold more than memory does. Writes
    /// are refused until the shard has re-read the journal.
    resync_needed: bool,
    resync_running: bool,
    /// Messages a full peer mailbox refused; retried on the next tick.
    undelivered: Vec<(ShardId, Vec<ShardMessage>)>,
    tick: Option<SpawnHandle>,
    events_since_snapshot: u64,
    last_snapshot_at: Instant,
    snapshot_running: bool,
    /// Operators waiting for a restart to finish (kept across the restart).
    restart_waiters: Vec<ControlResponder>,
    /// Operators waiting for the running snapshot to be written.
    snapshot_waiters: Vec<(ControlResponder, bool)>,
    shutting_down: bool,
    /// Counts the cores built (each recovery and resync builds one): an archive
    /// round or lookup answered for an earlier core is dropped.
    core_generation: u64,
}

impl ShardActor {
    pub fn new(
        id: ShardId,
        settings: Arc<ShardSettings>,
        journal: Arc<dyn Journal>,
        peers: Arc<OnceLock<Vec<Addr<ShardActor>>>>,
        stats: Arc<ShardStats>,
    ) -> Self {
        Self {
            id,
            settings,
            journal,
            peers,
            stats,
            core: None,
            epoch: 0,
            durable_seq: 0,
            responders: HashMap::new(),
            next_token: 0,
            reads_open: Vec::new(),
            reads_writing: Vec::new(),
            writing: false,
            restart_after_write: false,
            flush_scheduled: false,
            resync_needed: false,
            resync_running: false,
            undelivered: Vec::new(),
            tick: None,
            events_since_snapshot: 0,
            last_snapshot_at: Instant::now(),
            snapshot_running: false,
            restart_waiters: Vec::new(),
            snapshot_waiters: Vec::new(),
            shutting_down: false,
            core_generation: 0,
        }
    }

    /// Notes how long a client message waited in the mailbox (for `/metrics`).
    /// A message is not shed here for having waited: a shard that stalled (a
    /// snapshot, a slow write) is not overloaded, and what waited for it is
    /// served right after; shedding is the admission control's
    /// (`crate::admission`).
    fn note_queue_delay(&self, sent_at: Instant) {
        let waited_us = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats
            .queue_delay_us
            .store(waited_us, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        (self.settings.clock)()
    }

    /// Runs `f` on the core; a panic inside stops the actor so the supervisor
    /// restarts it from the journal.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut ShardCore)) {
        let now = self.now();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        core.advance_clock(now);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(core))) {
            let message = panic_message(&panic);
            tracing::error!(shard = %self.id, %message, "shard panicked; restarting from the journal");
            self.stats.set_state(ShardState::Crashed);
            ctx.stop();
            return;
        }
        // Refused at the open-entity ceiling: nothing changed, so nothing to wait
        // for.
        for token in core.take_overloaded() {
            self.answer(token, Err(EngineError::Overloaded));
        }
        self.schedule_flush(ctx);
    }

    fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        // A batch that is already large goes out now if the journal is idle, rather
        // than after the mailbox drains: otherwise a few big client batches queued
        // together are all handled before the first is written, and handling and
        // writing take turns instead of overlapping.
        let large = self
            .core
            .as_ref()
            .is_some_and(|core| core.open_events() >= self.settings.flush_at_once_events_min);
        if large && !self.writing {
            self.flush(ctx);
            return;
        }
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(Flush);
        }
    }

    fn answer(&mut self, token: Token, result: Result<Reply, EngineError>) {
        if let Some(responder) = self.responders.remove(&token) {
            // The client may have given up (timeout); nothing to do then.
            let _ = responder.send(result);
        }
    }

    /// Reads whose answers saw changes that will not become durable.
    fn fail_reads(&mut self) {
        let reads = std::mem::take(&mut self.reads_open)
            .into_iter()
            .chain(std::mem::take(&mut self.reads_writing));
        for (_, responder) in reads {
            let _ = responder.send(Err(EngineError::Retry));
        }
    }

    /// The batch is durable: answer clients and the reads that saw it, send saga
    /// messages.
    fn release(&mut self, mut batch: Batch, reads: Vec<(Reply, Responder)>) {
        if !batch.notices.is_empty() {
            self.settings.observer.notices(self.id, &batch.notices);
        }
        for (token, reply) in batch.replies.drain(..) {
            self.answer(token, Ok(reply));
        }
        let mut by_shard: HashMap<ShardId, Vec<ShardMessage>> = HashMap::new();
        for envelope in batch.messages.drain(..) {
            by_shard
                .entry(envelope.to)
                .or_default()
                .push(envelope.message);
        }
        for (to, messages) in by_shard {
            self.deliver(to, messages);
        }
        for (reply, responder) in reads {
            let _ = responder.send(Ok(reply));
        }
        if let Some(core) = self.core.as_mut() {
            core.recycle(batch);
        }
    }

    fn deliver(&mut self, to: ShardId, messages: Vec<ShardMessage>) {
        let Some(peers) = self.peers.get() else {
            self.undelivered.push((to, messages));
            return;
        };
        let peer = &peers[to.0 as usize];
        self.settings.observer.mailbox_sent(to);
        if let Err(error) = peer.try_send(Deliver { messages }) {
            self.settings.observer.mailbox_received(to);
            let messages = match error {
                SendError::Full(deliver) | SendError::Closed(deliver) => deliver.messages,
            };
            // Steps are idempotent and their coordinators resend them anyway; keeping
            // them for the next tick only saves the resend delay.
            self.undelivered.push((to, messages));
        }
    }

    fn fail_batch(&mut self, batch: &Batch) {
        for (token, _) in &batch.replies {
            self.answer(*token, Err(EngineError::Retry));
        }
        for token in &batch.new_waiters {
            self.answer(*token, Err(EngineError::Retry));
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the journal write and both of its outcomes (commit and release, or roll back both batches) read best in one place"
    )]
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        self.send_lookups(ctx);
        if self.writing {
            // The write's completion flushes again.
            return;
        }
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if !core.batch_open() {
            self.after_flush(ctx);
            return;
        }
        let batch = core.take_batch();
        let reads = std::mem::take(&mut self.reads_open);
        if batch.events.is_empty() {
            core.commit_batch(&batch);
            self.release(batch, reads);
            self.after_flush(ctx);
            return;
        }
        // Nothing is in flight, so everything before this batch is durable.
        let mut record =
            JournalRecord::encode(self.id, self.epoch, self.durable_seq + 1, &batch.events);
        if self.settings.limits.record_changes {
            record = record.with_changes(&batch.notices);
        }
        let events = batch.events.len();
        let last_seq = record.last_seq;
        let append = self.journal.append(record);
        let started = Instant::now();
        let write = with_timeout(append, self.journal_timeout());
        self.writing = true;
        self.reads_writing = reads;
        let done = write.into_actor(self).map(move |result, actor, ctx| {
            actor.writing = false;
            actor
                .settings
                .observer
                .batch_flushed(actor.id, events, started.elapsed(), result.is_ok());
            let core = actor.core.as_mut().expect("core exists while a batch is written");
            match result {
                Ok(()) => {
                    actor.durable_seq = last_seq;
                    core.commit_batch(&batch);
                    actor.stats.last_seq.store(last_seq, Ordering::Relaxed);
                    actor.stats.update_counts(&core.state);
                    actor.events_since_snapshot += events as u64;
                    let reads = std::mem::take(&mut actor.reads_writing);
                    actor.release(batch, reads);
                    actor.archive_finished(ctx);
                    if actor.restart_after_write {
                        actor.restart_after_write = false;
                        ctx.stop();
                        return;
                    }
                    // The next batch, handled meanwhile, goes out at once.
                    actor.flush(ctx);
                }
                Err(error) => {
                    tracing::error!(shard = %actor.id, %error, events, "journal append failed; batch rolled back");
                    // Everything after the durable point goes: this batch and the
                    // one handled while it was written (the first rollback undoes
                    // both; each drops its own batch's waiters).
                    let open = core.take_batch();
                    core.rollback(actor.durable_seq, &batch);
                    core.rollback(actor.durable_seq, &open);
                    actor.fail_batch(&batch);
                    actor.fail_batch(&open);
                    actor.fail_reads();
                    actor.resync_needed = true;
                    actor.stats.set_state(ShardState::Degraded);
                    if actor.restart_after_write {
                        actor.restart_after_write = false;
                        ctx.stop();
                    }
                }
            }
        });
        if self.quiesce_wanted() {
            // A snapshot (or shutdown) needs a moment with nothing undurable in
            // memory: handle nothing else until this batch is durable.
            ctx.wait(done);
        } else {
            ctx.spawn(done);
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let undelivered = std::mem::take(&mut self.undelivered);
        for (to, messages) in undelivered {
            self.deliver(to, messages);
        }
        if self.resync_needed {
            self.resync(ctx);
            return;
        }
        self.archive_finished(ctx);
        self.guarded(ctx, |core| core.tick());
    }

    /// Re-reads the journal after a failed write, so that memory matches exactly
    /// what is durable (the failed write may or may not have landed).
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resync_running {
            return;
        }
        self.resync_running = true;
        let load = self.journal.load(self.id);
        let hash_seed = self.settings.hash_seed;
        let id = self.id;
        ctx.spawn(load.into_actor(self).map(move |result, actor, _ctx| {
            actor.resync_running = false;
            let recovered = match result.and_then(|r| recover_state(id, &r, hash_seed)) {
                Ok(recovered) => recovered,
                Err(error) => {
                    tracing::warn!(shard = %id, %error, "journal still unavailable; will retry");
                    return;
                }
            };
            let (state, events) = recovered;
            let mut core = match actor.build_core(state, &events) {
                Ok(core) => core,
                Err(error) => {
                    tracing::error!(shard = %id, %error, "journal does not replay; will retry");
                    return;
                }
            };
            // Clients waiting on sagas cannot be matched to the rebuilt state.
            if let Some(old) = actor.core.as_mut() {
                for token in old.take_waiters() {
                    actor.answer(token, Err(EngineError::Retry));
                }
            }
            core.redrive();
            actor.durable_seq = core.state.last_seq;
            actor.core = Some(core);
            actor.core_generation += 1;
            actor.resync_needed = false;
            actor.stats.set_state(ShardState::Running);
            tracing::info!(shard = %id, seq = actor.durable_seq, "shard resynchronised with the journal");
        }));
    }

    /// Runs whenever a batch has been committed (or there was none): takes the
    /// snapshots operators asked for, or one the policy says is due.
    fn after_flush(&mut self, ctx: &mut Context<Self>) {
        if self.snapshot_running {
            return;
        }
        if !self.snapshot_waiters.is_empty() {
            if self.durable_seq == self.stats.snapshot_seq.load(Ordering::Relaxed) {
                // Nothing new since the last snapshot.
                let seq = self.durable_seq;
                for (waiter, shutdown) in self.snapshot_waiters.drain(..) {
                    let reply = if shutdown {
                        ControlReply::ShutDown { snapshot_seq: seq }
                    } else {
                        ControlReply::Snapshot { snapshot_seq: seq }
                    };
                    let _ = waiter.send(Ok(reply));
                }
            } else {
                self.snapshot(ctx);
            }
            return;
        }
        self.maybe_snapshot(ctx);
    }

    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.snapshot_due() {
            self.snapshot(ctx);
        }
    }

    /// Whether the next write should hold the mailbox until it is durable, so that
    /// a snapshot (or a shutdown) finds nothing undurable in memory.
    fn quiesce_wanted(&self) -> bool {
        !self.snapshot_waiters.is_empty() || self.shutting_down || self.snapshot_due()
    }

    fn snapshot_due(&self) -> bool {
        if self.snapshot_running {
            return false;
        }
        let Some(core) = self.core.as_ref() else {
            return false;
        };
        // A snapshot copies and encodes the whole state. Waiting for at least as
        // many events as the state has entries bounds its cost per event (each
        // event pays for about one entry) however large the state grows, and
        // bounds the replay at recovery to about one snapshot's worth. The
        // filter of archived keys is written whole only now and then, and
        // otherwise as the hashes since (see `crate::filter`), which each event
        // pays for as it inserts them.
        let weight = core.state.entries() as u64;
        let every_events = self.settings.snapshot_every_events.max(weight);
        let due_by_count = self.events_since_snapshot >= every_events;
        let due_by_time = self.events_since_snapshot > 0
            && self.last_snapshot_at.elapsed().as_secs() >= self.settings.snapshot_interval_s;
        due_by_count || due_by_time
    }

    /// Copies the durable state between batches (so the copy is exactly what the
    /// journal holds up to `durable_seq`), then encodes and writes the copy in the
    /// background. Encoding on the shard's thread stalled it: 2.3 s for a 99 MB
    /// state in a flash sale; the copy shares every id (`Arc<str>`) and takes a
    /// fraction of that.
    fn snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.snapshot_running || self.writing {
            return;
        }
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if core.batch_open() {
            // Undurable changes are in memory; try again after the next flush.
            return;
        }
        let started = Instant::now();
        let (state, full) = core.state.copy_for_snapshot();
        let generation = self.core_generation;
        let copy_ms = started.elapsed().as_millis() as u64;
        self.snapshot_running = true;
        self.events_since_snapshot = 0;
        self.last_snapshot_at = Instant::now();
        let (id, journal) = (self.id, self.journal.clone());
        let save = async move {
            let snapshot =
                tokio::task::spawn_blocking(move || crate::journal::Snapshot::encode(id, &state))
                    .await
                    .map_err(|error| {
                        JournalError::Unavailable(format!("snapshot encoding failed: {error}"))
                    })?;
            let (seq, bytes) = (snapshot.seq, snapshot.payload.len());
            journal.save_snapshot(snapshot).await.map(|()| (seq, bytes))
        };
        ctx.spawn(save.into_actor(self).map(move |result, actor, _ctx| {
            actor.snapshot_running = false;
            let waiters = std::mem::take(&mut actor.snapshot_waiters);
            match result {
                Ok((seq, bytes)) => {
                    // The same core that was copied (not one recovered since):
                    // a full snapshot becomes its filter's base.
                    if let Some(core) = actor.core.as_mut().filter(|_| actor.core_generation == generation) {
                        core.state.snapshot_written(seq, full);
                    }
                    actor.stats.snapshot_seq.store(seq, Ordering::Relaxed);
                    actor.settings.observer.snapshot_written(actor.id, bytes, started.elapsed());
                    tracing::info!(shard = %actor.id, seq, bytes, whole = full.is_some(), copy_ms, ms = started.elapsed().as_millis() as u64, "snapshot written");
                    for (waiter, shutdown) in waiters {
                        let reply = if shutdown {
                            ControlReply::ShutDown { snapshot_seq: seq }
                        } else {
                            ControlReply::Snapshot { snapshot_seq: seq }
                        };
                        let _ = waiter.send(Ok(reply));
                    }
                }
                Err(error) => {
                    tracing::warn!(shard = %actor.id, %error, "snapshot failed; the journal still has everything");
                    for (waiter, _) in waiters {
                        let _ = waiter.send(Err(EngineError::Retry));
                    }
                }
            }
        }));
    }

    fn control(
        &mut self,
        request: ControlRequest,
        reply: ControlResponder,
        ctx: &mut Context<Self>,
    ) {
        match request {
            ControlRequest::Snapshot | ControlRequest::Shutdown => {
                let shutdown = matches!(request, ControlRequest::Shutdown);
                self.shutting_down |= shutdown;
                if self.core.is_none() || self.resync_needed {
                    let _ = reply.send(Err(EngineError::Retry));
                    return;
                }
                // Taken once the current batch is flushed (see `after_flush`).
                self.snapshot_waiters.push((reply, shutdown));
                self.schedule_flush(ctx);
            }
            ControlRequest::Restart => {
                self.restart_waiters.push(reply);
                self.stats.set_state(ShardState::Recovering);
                if self.writing {
                    // Stopping now would leave the clients of the batch in flight
                    // guessing; its completion stops the shard.
                    self.restart_after_write = true;
                } else {
                    ctx.stop();
                }
            }
            ControlRequest::Panic => {
                let _ = reply.send(Ok(ControlReply::Panicked));
                self.guarded(ctx, |_| {
                    panic!("fault injection: operator asked for a panic")
                });
            }
        }
    }

    fn journal_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.journal_timeout_ms)
    }

    /// Hands the finished entities that are durable to the archive, one round at a
    /// time; once it has stored them, the core lets them leave memory.
    fn archive_finished(&mut self, ctx: &mut Context<Self>) {
        let durable_seq = self.durable_seq;
        let Some(round) = self
            .core
            .as_mut()
            .and_then(|core| core.take_archivable(durable_seq))
        else {
            return;
        };
        let (id, generation, through_seq) = (self.id, self.core_generation, round.through_seq);
        let entities = round.entities.len();
        let store = with_timeout(
            self.journal.archive(id, round.entities),
            self.journal_timeout(),
        );
        ctx.spawn(store.into_actor(self).map(move |result, actor, ctx| {
            if actor.core_generation != generation {
                return;
            }
            if let Err(error) = &result {
                tracing::warn!(shard = %id, %error, entities, "archive write failed; the round goes again");
            }
            let stored = result.is_ok();
            actor.guarded(ctx, |core| core.archived(through_seq, stored));
        }));
    }

    /// Sends the lookups the inputs handled since the last flush are parked on,
    /// in one request.
    fn send_lookups(&mut self, ctx: &mut Context<Self>) {
        let Some(keys) = self
            .core
            .as_mut()
            .map(ShardCore::take_lookups)
            .filter(|keys| !keys.is_empty())
        else {
            return;
        };
        let (id, generation) = (self.id, self.core_generation);
        let lookup = with_timeout(self.journal.lookup(keys.clone()), self.journal_timeout());
        ctx.spawn(lookup.into_actor(self).map(move |result, actor, ctx| {
            if actor.core_generation != generation {
                // The core that parked the inputs is gone, and their clients
                // were told to retry with it.
                return;
            }
            match result {
                Ok(found) => actor.guarded(ctx, |core| {
                    core.looked_up(found);
                }),
                Err(error) => {
                    tracing::warn!(shard = %id, %error, keys = keys.len(), "archive lookup failed; its commands are answered retry");
                    let tokens = actor
                        .core
                        .as_mut()
                        .map(|core| core.lookups_failed(&keys))
                        .unwrap_or_default();
                    for token in tokens {
                        actor.answer(token, Err(EngineError::Retry));
                    }
                }
            }
        }));
    }

    fn build_core(
        &self,
        state: crate::state::State,
        events: &[crate::event::Event],
    ) -> Result<ShardCore, JournalError> {
        crate::recovery::rebuild_core(
            self.id,
            self.settings.router,
            self.settings.limits.clone(),
            state,
            events,
            self.now(),
        )
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    /// Runs at the first start and after every restart: recover, then serve.
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.settings.mailbox_capacity);
        self.stats.set_state(ShardState::Recovering);
        let journal = self.journal.clone();
        let id = self.id;
        let hash_seed = self.settings.hash_seed;
        let started = Instant::now();
        let recovery = async move {
            // Storage may be down at start: keep trying, with a capped backoff.
            let mut backoff = Duration::from_millis(50);
            loop {
                let attempt = async {
                    let epoch = journal.acquire(id).await?;
                    let recovered = journal.load(id).await?;
                    let snapshot_seq = recovered.snapshot.as_ref().map_or(0, |s| s.seq);
                    let (state, events) = recover_state(id, &recovered, hash_seed)?;
                    Ok::<_, JournalError>((epoch, state, events, snapshot_seq))
                };
                match attempt.await {
                    Ok(result) => return Ok(result),
                    Err(error @ JournalError::Corrupt(_)) => return Err(error),
                    Err(error) => {
                        tracing::warn!(shard = %id, %error, "recovery waiting for the journal");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        };
        ctx.wait(recovery.into_actor(self).map(move |result, actor, ctx| {
            let result = result.and_then(|(epoch, state, events, snapshot_seq)| {
                let core = actor.build_core(state, &events)?;
                Ok((epoch, core, events.len(), snapshot_seq))
            });
            match result {
                Ok((epoch, mut core, replayed, snapshot_seq)) => {
                    actor.stats.snapshot_seq.store(snapshot_seq, Ordering::Relaxed);
                    core.redrive();
                    actor.epoch = epoch;
                    actor.durable_seq = core.state.last_seq;
                    actor.stats.last_seq.store(actor.durable_seq, Ordering::Relaxed);
                    actor.stats.update_counts(&core.state);
                    actor.core = Some(core);
                    actor.core_generation += 1;
                    actor.stats.set_state(ShardState::Running);
                    let elapsed = started.elapsed();
                    actor.stats.recovery_ms.store(elapsed.as_millis() as u64, Ordering::Relaxed);
                    actor.settings.observer.recovered(id, elapsed, replayed);
                    actor.events_since_snapshot = replayed as u64;
                    for waiter in actor.restart_waiters.drain(..) {
                        let _ = waiter.send(Ok(ControlReply::Restarted {
                            recovered_seq: actor.durable_seq,
                            recovery_ms: elapsed.as_millis() as u64,
                        }));
                    }
                    tracing::info!(shard = %id, epoch, seq = actor.durable_seq, replayed, ms = elapsed.as_millis() as u64, "shard recovered");
                    actor.schedule_flush(ctx);
                }
                Err(error) => {
                    // A corrupt journal must not be papered over: stay down, loudly.
                    tracing::error!(shard = %id, %error, "shard cannot recover");
                    actor.stats.set_state(ShardState::Failed);
                    for waiter in actor.restart_waiters.drain(..) {
                        let _ = waiter.send(Err(EngineError::Retry));
                    }
                }
            }
        }));
        let interval = Duration::from_millis(self.settings.tick_interval_ms);
        self.tick = Some(ctx.run_interval(interval, |actor, ctx| actor.on_tick(ctx)));
    }
}

impl Supervised for ShardActor {
    /// The actor stopped (a caught panic or an operator's restart). Everything
    /// volatile goes: waiting clients are told to retry, state is rebuilt from the
    /// journal by `started`.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.core = None;
        for (_, responder) in self.responders.drain() {
            let _ = responder.send(Err(EngineError::Retry));
        }
        self.fail_reads();
        // A write in flight was dropped with the context; its outcome is whatever
        // the journal says when `started` reads it back.
        self.writing = false;
        self.restart_after_write = false;
        self.flush_scheduled = false;
        self.resync_needed = false;
        self.resync_running = false;
        self.tick = None;
        self.snapshot_running = false;
        for (waiter, _) in self.snapshot_waiters.drain(..) {
            let _ = waiter.send(Err(EngineError::Retry));
        }
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler<Submit> for ShardActor {
    type Result = ();

    fn handle(&mut self, message: Submit, ctx: &mut Context<Self>) {
        self.settings.observer.mailbox_received(self.id);
        self.note_queue_delay(message.sent_at);
        if self.core.is_none() || self.resync_needed || self.shutting_down {
            let error = if self.shutting_down {
                EngineError::ShuttingDown
            } else {
                EngineError::Retry
            };
            for (_, responder) in message.items {
                let _ = responder.send(Err(error));
            }
            return;
        }
        let mut accepted = Vec::with_capacity(message.items.len());
        for (command, responder) in message.items {
            let token = self.next_token;
            self.next_token += 1;
            self.responders.insert(token, responder);
            accepted.push((token, command));
        }
        self.guarded(ctx, |core| {
            for (token, command) in accepted {
                // Parked or not, its client waits on the token.
                let _decided_now = core.command(token, command);
            }
        });
    }
}

impl Handler<Read> for ShardActor {
    type Result = ();

    fn handle(&mut self, message: Read, _ctx: &mut Context<Self>) {
        self.settings.observer.mailbox_received(self.id);
        self.note_queue_delay(message.sent_at);
        let Some(core) = self.core.as_ref() else {
            let _ = message.reply.send(Err(EngineError::Retry));
            return;
        };
        // Answered from the state as it is now, released once everything that
        // state includes is durable.
        let reply = core.query(&message.query);
        if core.batch_open() {
            self.reads_open.push((reply, message.reply));
        } else if self.writing {
            self.reads_writing.push((reply, message.reply));
        } else {
            let _ = message.reply.send(Ok(reply));
        }
    }
}

impl Handler<Deliver> for ShardActor {
    type Result = ();

    fn handle(&mut self, message: Deliver, ctx: &mut Context<Self>) {
        self.settings.observer.mailbox_received(self.id);
        if self.resync_needed {
            // Dropped: the coordinators resend unanswered steps.
            return;
        }
        self.guarded(ctx, |core| {
            for message in message.messages {
                core.message(message);
            }
        });
    }
}

impl Handler<Control> for ShardActor {
    type Result = ();

    fn handle(&mut self, message: Control, ctx: &mut Context<Self>) {
        self.control(message.request, message.reply, ctx);
    }
}

impl Handler<Flush> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

/// A storage call that gives up after `timeout`, as unavailable.
async fn with_timeout<T>(
    call: futures::future::BoxFuture<'static, Result<T, JournalError>>,
    timeout: Duration,
) -> Result<T, JournalError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(JournalError::Unavailable(format!(
            "storage took longer than {} ms",
            timeout.as_millis()
        ))),
    }
}
