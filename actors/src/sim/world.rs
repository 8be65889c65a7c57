//! The simulated world: shards, network, journal, clock and clients, stepped by one
//! seeded RNG. A step is one thing happening (a client sends, a shard drains its
//! mailbox and flushes, time passes, a shard crashes, a snapshot is written); after
//! each, the invariants that hold at every instant are checked. At the end the world
//! is brought to quiescence and checked whole.

use super::checks::Ledger;
use super::network::{InFlight, Network, NetworkFaults};
use super::node::{Answer, Env, Fault, Input, Node, Output};
use super::rng::SimRng;
use super::workload::{Mix, Universe, Workload};
use crate::domain::{AccountId, Currency, Sku, TimestampMs};
use crate::event::Event;
use crate::filter::{FILTER_LAYER_BYTES_DEFAULT, FILTER_LAYER_BYTES_MIN};
use crate::journal::{Journal, MemoryJournal, Snapshot};
use crate::order::OrderStatus;
use crate::router::{Router, ShardId};
use crate::shard::ShardLimits;
use futures::executor::block_on;
use rust_decimal::Decimal;
use std::fmt;

/// Where a run starts: the wall clock of a plausible day, so timestamps look real.
const START_MS: TimestampMs = 1_750_000_000_000;
/// How often each shard's tick timer fires (the actor's `tick_interval_ms`).
pub const TICK_INTERVAL_MS: u64 = 20;
/// Most world steps spent bringing the world to quiescence before declaring it stuck.
const QUIESCENCE_STEPS_MAX: usize = 20_000;
/// Inputs a shard's mailbox holds (the actor's `mailbox_capacity`, scaled down).
const MAILBOX_CAPACITY: usize = 256;
/// Most clock jumps are at most the retention divided by this.
const JUMP_RETENTION_DIVISOR: u64 = 10;
/// Long faults (clock jumps, downtimes, partitions, late duplicates) last up to
/// this many retention periods: nothing in the engine may depend on a step
/// taking less than the retention (see the module documentation of `sim`).
const LONG_FAULT_RETENTIONS: u64 = 3;
/// Full (slower) invariant checks run every this many steps.
pub(super) const FULL_CHECK_EVERY_STEPS: u64 = 64;

/// What to run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// World steps before quiescence.
    pub steps: u64,
    /// Prints every step to stderr.
    pub trace: bool,
}

/// A run that held every invariant.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub seed: u64,
    pub steps: u64,
    pub requests: u64,
    pub events: u64,
    pub crashes: u64,
    pub failed_writes: u64,
    pub messages_delivered: u64,
    pub messages_duplicated: u64,
    pub messages_lost: u64,
    pub shards: u32,
    /// How the run's orders ended, to see that the mix exercises every ending.
    pub orders: OrderTally,
    /// Rounds of finished entities that left memory for the archive, and
    /// entities recalled from it, to see that the run exercises both.
    pub archive_rounds: u64,
    pub recalls: u64,
    /// Step floors journaled by participants (see `crate::model::StepOrigin`).
    pub floors_raised: u64,
    /// Clock jumps and downtimes longer than the retention.
    pub long_faults: u64,
    pub partitions: u64,
}

/// Orders by final status, at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct OrderTally {
    pub confirmed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub expired: u64,
}

impl OrderTally {
    pub fn total(&self) -> u64 {
        self.confirmed + self.rejected + self.cancelled + self.expired
    }
}

/// A broken invariant (or an engine panic), with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    /// The world step at which it broke; `None` during quiescence.
    pub step: Option<u64>,
    pub steps: u64,
    pub message: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(step) => write!(f, "seed {} failed at step {step}", self.seed)?,
            None => write!(f, "seed {} failed at quiescence", self.seed)?,
        }
        write!(
            f,
            ": {}\nreplay: SEED={} STEPS={} TRACE=1 cargo test -p surge-actors --test simulation \
             -- --nocapture   (or: cargo run -p surge-actors --release --example sim -- --seed {} --steps {})",
            self.message, self.seed, self.steps, self.seed, self.steps
        )
    }
}

/// Faults and timings drawn from the seed: every run explores a different world.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub shards: u32,
    pub limits: ShardLimits,
    pub network: NetworkFaults,
    pub crash_per_mille: u64,
    /// Per mille of crashes that take every shard down at once (a process crash).
    pub process_crash_per_mille: u64,
    pub downtime_ms_max: u64,
    pub write_failure_per_mille: u64,
    pub outage_per_mille: u64,
    pub outage_ms_max: u64,
    pub snapshot_per_mille: u64,
    pub hash_seed: u64,
    /// Per mille of clock jumps and downtimes that last longer than every
    /// retention (up to `LONG_FAULT_RETENTIONS` of them).
    pub long_fault_per_mille: u64,
    /// Per mille of steps that cut two shards apart, for up to
    /// `LONG_FAULT_RETENTIONS` retention periods.
    pub partition_per_mille: u64,
}

impl Scenario {
    fn draw(rng: &mut SimRng) -> Self {
        let retention_ms = rng.between(30_000, 120_000);
        Self {
            shards: rng.between(1, 4) as u32,
            limits: ShardLimits {
                retention_ms,
                step_resend_ms: rng.between(100, 1_000),
                expirations_per_tick_max: rng.between(20, 1_000) as usize,
                // Sometimes so short that deadlines race every step of the saga.
                order_timeout_ms: if rng.chance(300) {
                    rng.between(20, 300)
                } else {
                    rng.between(1_000, 60_000)
                },
                // From "at once" to past most retries.
                finished_in_memory_ms: match rng.between(0, 3) {
                    0 => 0,
                    1 => rng.between(1, 100),
                    _ => rng.between(100, 5_000),
                },
                // Sometimes low enough that new work is refused as overloaded.
                open_entities_max: if rng.chance(200) {
                    rng.between(5, 50) as usize
                } else {
                    ShardLimits::default().open_entities_max
                },
                // Sometimes the smallest filter, so that it fills and answers
                // "maybe" for most ids: every such answer costs a lookup.
                archived_filter_bytes: if rng.chance(300) {
                    FILTER_LAYER_BYTES_MIN
                } else {
                    FILTER_LAYER_BYTES_DEFAULT
                },
                // Always: the notices it adds (payments, reservations) are
                // checked like the others, and drawing it would change every
                // seed's world.
                record_changes: true,
            },
            network: NetworkFaults {
                delay_ms_max: rng.between(0, 50),
                slow_per_mille: rng.between(0, 50),
                slow_delay_ms_max: 1_000,
                duplicate_per_mille: rng.between(0, 100),
                loss_per_mille: rng.between(0, 30),
                reorder_within_pair: rng.chance(300),
                late_duplicate_per_mille: rng.between(0, 20),
                late_delay_ms_max: LONG_FAULT_RETENTIONS * retention_ms,
            },
            crash_per_mille: rng.between(0, 8),
            process_crash_per_mille: 200,
            downtime_ms_max: rng.between(0, 2_000),
            write_failure_per_mille: rng.between(0, 30),
            outage_per_mille: rng.between(0, 3),
            outage_ms_max: 1_000,
            snapshot_per_mille: rng.between(0, 20),
            hash_seed: rng.next_u64(),
            long_fault_per_mille: rng.between(0, 50),
            partition_per_mille: rng.between(0, 3),
        }
    }
}

/// One step's kind, for the trace.
#[derive(Debug, Clone, Copy)]
enum Action {
    Send,
    Activate,
    Advance,
    Jump,
}

pub struct World {
    pub(super) rng: SimRng,
    pub(super) scenario: Scenario,
    pub(super) router: Router,
    pub(super) journal: MemoryJournal,
    pub(super) nodes: Vec<Node>,
    pub(super) network: Network,
    pub(super) workload: Workload,
    pub(super) ledger: Ledger,
    pub(super) now_ms: TimestampMs,
    down_until_ms: Vec<TimestampMs>,
    last_tick_ms: TimestampMs,
    outage_until_ms: TimestampMs,
    pub(super) report: SimReport,
    /// At the end: each shard's state with what it archived put back (see
    /// `check_final`).
    pub(super) merged: Vec<crate::state::State>,
    trace: bool,
    /// When set, no more faults are injected (quiescence).
    calm: bool,
}

impl World {
    pub fn new(config: &SimConfig) -> Self {
        let mut rng = SimRng::new(config.seed);
        let scenario = Scenario::draw(&mut rng);
        let router = Router::new(scenario.shards);
        let currencies: Vec<Currency> = ["USD", "EUR", "JPY"]
            .iter()
            .map(|code| Currency::parse(code).expect("known currency"))
            .collect();
        let account_count = rng.between(3, 12);
        let accounts = (0..account_count)
            .map(|i| {
                let currency = currencies[rng.index(currencies.len())];
                let overdraft = if rng.chance(200) {
                    Decimal::from(50)
                } else {
                    Decimal::ZERO
                };
                let id = AccountId::parse(&format!("acct{i}")).expect("valid id");
                (id, currency, overdraft)
            })
            .collect();
        let skus = (0..rng.between(1, 4))
            .map(|i| Sku::parse(&format!("sku{i}")).expect("valid id"))
            .collect();
        let retention_ms = scenario.limits.retention_ms;
        let universe = Universe {
            accounts,
            skus,
            // Holds outliving the retention period are the rule in production (7 days
            // against 24 hours), so they are here too.
            hold_timeout_ms_max: 3 * retention_ms,
            ttl_ms_max: retention_ms,
        };
        let shards = scenario.shards;
        let nodes = (0..shards).map(|i| Node::new(ShardId(i))).collect();
        let report = SimReport {
            seed: config.seed,
            shards,
            ..SimReport::default()
        };
        Self {
            network: Network::new(scenario.network.clone()),
            workload: Workload::new(universe, Mix::default()),
            ledger: Ledger::new(shards as usize),
            rng,
            router,
            journal: MemoryJournal::new(),
            nodes,
            now_ms: START_MS,
            down_until_ms: vec![START_MS; shards as usize],
            last_tick_ms: START_MS,
            outage_until_ms: 0,
            report,
            merged: Vec::new(),
            trace: config.trace,
            calm: false,
            scenario,
        }
    }

    /// Starts every shard from its (empty) journal.
    pub fn start(&mut self) -> Result<(), String> {
        for shard in 0..self.nodes.len() {
            self.recover(shard)?;
        }
        Ok(())
    }

    fn recover(&mut self, shard: usize) -> Result<(), String> {
        let mut out = Output::default();
        let env = Env {
            journal: &self.journal,
            router: self.router,
            limits: &self.scenario.limits,
            hash_seed: self.scenario.hash_seed,
            now_ms: self.now_ms,
        };
        let result = self.nodes[shard].recover(&env, &mut out);
        if self.trace {
            eprintln!("  recover shard {shard}: {result:?}");
        }
        match result {
            Ok(()) => {}
            Err(crate::JournalError::Unavailable(_)) => {}
            Err(error) => return Err(format!("shard {shard} cannot recover: {error}")),
        }
        self.route(ShardId(shard as u32), out)
    }

    /// One world step.
    pub fn step(&mut self) -> Result<(), String> {
        self.journal.set_failing(self.now_ms < self.outage_until_ms);
        let action = match self.rng.weighted(&[30, 45, 25, 1]) {
            0 => Action::Send,
            1 => Action::Activate,
            2 => Action::Advance,
            _ => Action::Jump,
        };
        if self.trace {
            eprintln!(
                "step {} at +{}ms: {action:?}",
                self.report.steps,
                self.now_ms - START_MS
            );
        }
        match action {
            Action::Send => {
                for _ in 0..self.rng.between(1, 3) {
                    let request = self.workload.generate(&mut self.rng, self.now_ms);
                    self.deliver_request(request)?;
                }
            }
            Action::Activate => {
                let shard = self.pick_busy_shard();
                let fault = self.draw_fault();
                // Half the time the whole mailbox, as the actor drains it into one
                // batch; otherwise a part, as when a flush starts mid-burst.
                let inputs_max = if self.rng.chance(500) {
                    usize::MAX
                } else {
                    self.rng.between(1, 12) as usize
                };
                self.activate(shard, inputs_max, fault)?;
            }
            Action::Advance => {
                let ms = self.rng.between(1, 2 * TICK_INTERVAL_MS);
                self.advance(ms)?;
            }
            Action::Jump => {
                // Mostly far enough for holds, reservations and records to expire
                // over a few jumps; now and then past every retention at once.
                let ms = self.long_or(self.scenario.limits.retention_ms / JUMP_RETENTION_DIVISOR);
                self.advance(ms)?;
            }
        }
        if !self.calm {
            self.inject_faults()?;
        }
        self.report.steps += 1;
        Ok(())
    }

    fn inject_faults(&mut self) -> Result<(), String> {
        if self.rng.chance(self.scenario.crash_per_mille) {
            if self.rng.chance(self.scenario.process_crash_per_mille) {
                for shard in 0..self.nodes.len() {
                    self.crash(shard)?;
                }
                // The process held the messages in flight between its shards.
                self.network.clear();
            } else {
                let shard = self.rng.index(self.nodes.len());
                self.crash(shard)?;
            }
        }
        if self.rng.chance(self.scenario.outage_per_mille) {
            self.outage_until_ms = self.now_ms + self.rng.between(1, self.scenario.outage_ms_max);
            if self.trace {
                eprintln!(
                    "  journal outage until +{}ms",
                    self.outage_until_ms - START_MS
                );
            }
        }
        if self.rng.chance(self.scenario.snapshot_per_mille) {
            let shard = self.rng.index(self.nodes.len());
            self.snapshot(shard);
        }
        if self.nodes.len() > 1 && self.rng.chance(self.scenario.partition_per_mille) {
            let a = self.rng.index(self.nodes.len());
            let b = (a + 1 + self.rng.index(self.nodes.len() - 1)) % self.nodes.len();
            let ms = self.long_or(self.scenario.limits.retention_ms / JUMP_RETENTION_DIVISOR);
            self.network
                .partition(ShardId(a as u32), ShardId(b as u32), self.now_ms + ms);
            self.report.partitions += 1;
            if self.trace {
                eprintln!("  partition {a} <-> {b} for {ms}ms");
            }
        }
        Ok(())
    }

    fn draw_fault(&mut self) -> Fault {
        if self.calm {
            return Fault::None;
        }
        if self.rng.chance(self.scenario.write_failure_per_mille) {
            return if self.rng.chance(500) {
                Fault::WriteFails
            } else {
                Fault::WriteLandsButFails
            };
        }
        if self.rng.chance(self.scenario.crash_per_mille) {
            return if self.rng.chance(500) {
                Fault::CrashBeforeWrite
            } else {
                Fault::CrashAfterWrite
            };
        }
        Fault::None
    }

    /// A shard with work waiting, or one that is down and due to restart, or any.
    fn pick_busy_shard(&mut self) -> usize {
        let busy: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                let node = &self.nodes[i];
                (!node.is_up() && self.down_until_ms[i] <= self.now_ms)
                    || (node.is_up() && !node.inbox.is_empty())
            })
            .collect();
        if busy.is_empty() {
            self.rng.index(self.nodes.len())
        } else {
            busy[self.rng.index(busy.len())]
        }
    }

    fn deliver_request(&mut self, request: u64) -> Result<(), String> {
        let command = self.workload.requests[request as usize].command.clone();
        let shard = self.router.shard_for(command.route_key()).0 as usize;
        if self.trace {
            eprintln!("  request {request} -> shard {shard}: {command:?}");
        }
        self.report.requests += 1;
        if !self.nodes[shard].is_up() || self.nodes[shard].inbox.len() >= MAILBOX_CAPACITY {
            // Nobody listens (the connection is refused), or the mailbox is full
            // (503 overloaded): either way the client may retry.
            return self.on_answer(request, Answer::Retry);
        }
        self.nodes[shard]
            .inbox
            .push_back(Input::Command(request, command));
        Ok(())
    }

    fn activate(&mut self, shard: usize, inputs_max: usize, fault: Fault) -> Result<(), String> {
        if !self.nodes[shard].is_up() {
            if self.down_until_ms[shard] <= self.now_ms {
                self.recover(shard)?;
            }
            return Ok(());
        }
        if self.trace {
            eprintln!("  activate shard {shard}: {inputs_max} inputs, {fault:?}");
        }
        let mut out = Output::default();
        let env = Env {
            journal: &self.journal,
            router: self.router,
            limits: &self.scenario.limits,
            hash_seed: self.scenario.hash_seed,
            now_ms: self.now_ms,
        };
        self.nodes[shard].activate(&env, inputs_max, fault, &mut out);
        if matches!(fault, Fault::WriteFails | Fault::WriteLandsButFails) {
            self.report.failed_writes += 1;
        }
        self.route(ShardId(shard as u32), out)
    }

    /// Routes what a node produced: journaled events to the ledger, answers to the
    /// clients, messages to the network.
    fn route(&mut self, from: ShardId, out: Output) -> Result<(), String> {
        if let Some(error) = out.unexpected.first() {
            return Err(format!("shard {from}: unexpected journal error: {error}"));
        }
        for (shard, events) in out.journaled {
            self.report.events += events.len() as u64;
            let count = |kind: fn(&Event) -> bool| events.iter().filter(|e| kind(e)).count() as u64;
            self.report.archive_rounds += count(|e| matches!(e, Event::EntitiesArchived { .. }));
            self.report.recalls += count(|e| matches!(e, Event::EntityRecalled { .. }));
            self.report.floors_raised += count(|e| matches!(e, Event::StepFloorRaised { .. }));
            self.ledger.append(shard.0 as usize, events);
        }
        if out.crashed {
            self.note_crash(from.0 as usize);
        }
        for (request, at_ms) in out.decided {
            self.workload.on_decided(request, at_ms);
        }
        for (request, answer) in out.answers {
            self.on_answer(request, answer)?;
        }
        for envelope in out.messages {
            let message = InFlight {
                from,
                to: envelope.to,
                message: envelope.message,
            };
            if self.trace {
                eprintln!(
                    "  send {} -> {}: {:?}",
                    message.from, message.to, message.message
                );
            }
            self.network.send(&mut self.rng, self.now_ms, message);
        }
        Ok(())
    }

    fn on_answer(&mut self, request: u64, answer: Answer) -> Result<(), String> {
        if self.trace {
            eprintln!("  answer {request}: {answer:?}");
        }
        let retention_ms = self.scenario.limits.retention_ms;
        self.workload.on_answer(request, answer, retention_ms)
    }

    /// A duration of up to `short_ms_max`, or, now and then, one longer than
    /// the retention (up to `LONG_FAULT_RETENTIONS` of it).
    fn long_or(&mut self, short_ms_max: u64) -> u64 {
        let retention_ms = self.scenario.limits.retention_ms;
        if self.rng.chance(self.scenario.long_fault_per_mille) {
            self.report.long_faults += 1;
            self.rng
                .between(retention_ms, LONG_FAULT_RETENTIONS * retention_ms)
        } else {
            self.rng.between(1, short_ms_max.max(1))
        }
    }

    fn note_crash(&mut self, shard: usize) {
        self.report.crashes += 1;
        let downtime = if self.calm {
            0
        } else {
            self.long_or(self.scenario.downtime_ms_max)
        };
        self.down_until_ms[shard] = self.now_ms + downtime;
        if self.trace {
            eprintln!("  crash shard {shard}, down for {downtime}ms");
        }
    }

    fn crash(&mut self, shard: usize) -> Result<(), String> {
        if !self.nodes[shard].is_up() {
            return Ok(());
        }
        let mut out = Output::default();
        self.nodes[shard].crash(&mut out);
        self.route(ShardId(shard as u32), out)
    }

    /// Writes a snapshot of a shard's durable state, as the actor does between
    /// batches (never while memory may be behind the journal).
    fn snapshot(&mut self, shard: usize) {
        let node = &mut self.nodes[shard];
        let id = node.id;
        let resync_needed = node.resync_needed;
        let Some(core) = node.core.as_mut() else {
            return;
        };
        if resync_needed || core.batch_open() {
            return;
        }
        // A full snapshot or a delta of the filter, as the actor takes them.
        let (copy, full) = core.state.copy_for_snapshot();
        let snapshot = Snapshot::encode(id, &copy);
        let (seq, base) = (snapshot.seq, snapshot.base_seq);
        let result = block_on(self.journal.save_snapshot(snapshot));
        if result.is_ok() {
            core.state.snapshot_written(seq, full);
        }
        if self.trace {
            eprintln!("  snapshot shard {shard} at {seq} (filter base {base:?}): {result:?}");
        }
    }

    /// Moves the clock: messages that are due arrive, tick timers fire.
    fn advance(&mut self, ms: u64) -> Result<(), String> {
        self.now_ms += ms;
        for message in self.network.due(self.now_ms) {
            let node = &mut self.nodes[message.to.0 as usize];
            // A shard that is down loses what arrives (its process is gone); a full
            // mailbox refuses it (the coordinator resends).
            if node.is_up() && node.inbox.len() < MAILBOX_CAPACITY {
                node.inbox.push_back(Input::Message(message.message));
            }
        }
        if self.now_ms - self.last_tick_ms >= TICK_INTERVAL_MS {
            self.last_tick_ms = self.now_ms;
            for node in &mut self.nodes {
                let ticking = node.inbox.iter().any(|input| matches!(input, Input::Tick));
                if node.is_up() && !ticking {
                    node.inbox.push_back(Input::Tick);
                }
            }
        }
        Ok(())
    }

    /// Stops the faults and new work, then lets everything run out: every shard up,
    /// every mailbox drained, every message delivered, every saga finished or
    /// parked in an authorization. Time moves only by ticks here, so idempotency
    /// records are still there afterwards.
    pub fn settle(&mut self) -> Result<(), String> {
        self.calm = true;
        self.outage_until_ms = 0;
        self.journal.set_failing(false);
        self.network.heal(self.now_ms);
        for _ in 0..QUIESCENCE_STEPS_MAX {
            for shard in 0..self.nodes.len() {
                if !self.nodes[shard].is_up() {
                    self.down_until_ms[shard] = self.now_ms;
                    self.recover(shard)?;
                }
                while !self.nodes[shard].inbox.is_empty() {
                    self.activate(shard, usize::MAX, Fault::None)?;
                }
            }
            if self.is_quiet() {
                return Ok(());
            }
            self.advance(TICK_INTERVAL_MS)?;
        }
        Err(format!(
            "the world never became quiet: a saga or a client is stuck: {}",
            self.describe_stuck()
        ))
    }

    /// What keeps the world from being quiet: each saga with a step outstanding
    /// (and since when it last moved), each client still waiting, each shard
    /// down or out of sync, the messages on the wire.
    fn describe_stuck(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            let id = node.id;
            if !node.is_up() || node.resync_needed {
                parts.push(format!(
                    "shard {id} is {}",
                    if node.is_up() {
                        "out of sync with its journal"
                    } else {
                        "down"
                    }
                ));
            }
            if node.waiting_clients() > 0 {
                parts.push(format!(
                    "{} clients wait on shard {id}",
                    node.waiting_clients()
                ));
            }
            let Some(core) = node.core.as_ref() else {
                continue;
            };
            let since = |at: TimestampMs| self.now_ms.saturating_sub(at);
            for payment in core.state.payments.values() {
                if let Some((account, kind)) = payment.outstanding_step() {
                    parts.push(format!(
                        "payment {} on shard {id} waits for {kind:?} on {account} (stamp {}), \
                         unmoved for {} ms",
                        payment.id,
                        payment.stage_seq,
                        since(payment.updated_at)
                    ));
                }
            }
            for order in core.state.orders.values().filter(|order| !order.is_final()) {
                let steps: Vec<String> = order
                    .outstanding_steps()
                    .iter()
                    .map(|step| format!("{:?}", step.tag()))
                    .collect();
                parts.push(format!(
                    "order {} on shard {id} at {:?} waits for [{}] (stamp {}), unmoved for {} ms",
                    order.id,
                    order.stage,
                    steps.join(", "),
                    order.stage_seq,
                    since(order.updated_at)
                ));
            }
        }
        if !self.network.is_empty() {
            parts.push("messages are still on the wire".to_owned());
        }
        const SHOWN_MAX: usize = 12;
        let more = parts.len().saturating_sub(SHOWN_MAX);
        parts.truncate(SHOWN_MAX);
        if more > 0 {
            parts.push(format!("and {more} more"));
        }
        parts.join("; ")
    }

    fn is_quiet(&self) -> bool {
        self.network.is_empty()
            && self.nodes.iter().all(|node| {
                node.is_up()
                    && !node.resync_needed
                    && node.inbox.is_empty()
                    && node.waiting_clients() == 0
                    && node.core.as_ref().is_some_and(|core| {
                        let timers_due = core
                            .state
                            .timers
                            .iter()
                            .next()
                            .is_some_and(|(deadline, _)| *deadline <= self.now_ms);
                        // Orders never park: one that is not final still waits
                        // for a step or its deadline.
                        !timers_due
                            && core
                                .state
                                .payments
                                .values()
                                .all(|payment| payment.outstanding_step().is_none())
                            && core.state.orders.values().all(|order| order.is_final())
                    })
            })
    }

    /// Sends requests into the calm world and settles it.
    pub fn send_and_settle(
        &mut self,
        commands: Vec<crate::command::Command>,
    ) -> Result<(), String> {
        for command in commands {
            let request = self.workload.send(command, self.now_ms);
            self.deliver_request(request)?;
        }
        self.settle()
    }

    /// Lets every timer fire: holds and reservations expire, records age out.
    pub fn expire_everything(&mut self) -> Result<(), String> {
        let horizon_ms = self.workload.universe.hold_timeout_ms_max
            + self.workload.universe.ttl_ms_max
            + 2 * self.scenario.limits.retention_ms;
        let jump_ms = self.scenario.limits.retention_ms / 4;
        let mut advanced_ms = 0;
        while advanced_ms <= horizon_ms {
            self.advance(jump_ms)?;
            advanced_ms += jump_ms;
            self.settle()?;
        }
        Ok(())
    }

    pub fn finish_report(&mut self) -> SimReport {
        let mut report = self.report.clone();
        report.messages_delivered = self.network.stats.delivered;
        report.messages_duplicated = self.network.stats.duplicated;
        report.messages_lost = self.network.stats.lost;
        // Every order, archived or not (the final check merged them).
        for state in &self.merged {
            for order in state.orders.values() {
                let count = match order.status {
                    OrderStatus::Confirmed => &mut report.orders.confirmed,
                    OrderStatus::Rejected => &mut report.orders.rejected,
                    OrderStatus::Cancelled => &mut report.orders.cancelled,
                    OrderStatus::Expired => &mut report.orders.expired,
                    // Quiescence checked that every order is final.
                    _ => continue,
                };
                *count += 1;
            }
        }
        report
    }
}
