//! The shard core: one shard's state machine plus its saga driving, with no I/O.
//!
//! The actor (and the simulator) feed it inputs: client commands, queries, saga
//! steps from other shards, their replies, and clock ticks. It applies what it
//! decides to its state at once, so later inputs in the same batch see earlier
//! ones, and collects a [`Batch`]: the events to journal, and the replies and
//! messages that may only leave once those events are durable. The owner then
//! either `commit`s (journal write succeeded) or `rollback`s (it failed).
//!
//! This module holds the core and its inputs; its children, one per concept (the
//! same concepts as `state`'s and `decide`'s) and one per piece of machinery:
//!
//! * `accounts`: an account owner's handling of a saga step.
//! * `payments`: a coordinator sending a payment's steps and taking their answers.
//! * `stock`: an item owner's handling of an order line's step.
//! * `orders`: a coordinator sending an order's steps and taking their answers.
//! * `idempotency`: recording an operation's outcome with its effect.
//! * `local`: turning a new payment or order into one event when its whole saga
//!   runs here.
//! * `messages`: what shards send each other.
//! * `batch`: taking a batch for the journal, and committing or rolling it back.
//! * `timers`: expiries, record pruning and step resends on each tick.
//! * `floors`: the step floors that let participants forget step records and
//!   drop late duplicates, whatever the delay.
//! * `notices`: what feeds hear of each event.
//! * `waiters`: clients waiting on a saga, answered when it moves.
//! * `reads`: queries answered from the state.
//! * `archive`: handing finished entities to the archive, and parking inputs
//!   while an entity that left memory is looked up.

mod accounts;
mod archive;
mod batch;
mod floors;
mod idempotency;
mod local;
mod messages;
mod notices;
mod orders;
mod payments;
mod reads;
mod stock;
mod timers;
mod waiters;

pub use archive::ArchiveRound;
pub use batch::{Batch, SPARE_EVENTS_CAPACITY_MAX};
pub use messages::{
    Envelope, LineStepReply, LineStepRequest, ShardMessage, StepFloor, StepReply, StepRequest,
};

use crate::archive::ArchiveKey;
use crate::command::Command;
use crate::command::Reply;
use crate::decide::{self, Plan, WaitFor};
use crate::domain::TimestampMs;
use crate::event::Event;
use crate::filter::FILTER_LAYER_BYTES_DEFAULT;
use crate::model::{OpOutcome, SagaId};
use crate::order;
use crate::router::{Router, ShardId};
use crate::state::State;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Identifies a waiting client request; the owner maps it to a reply channel.
pub type Token = u64;

/// How long a finished entity stays in memory by default (see
/// `ShardLimits::finished_in_memory_ms`).
pub const FINISHED_IN_MEMORY_MS_DEFAULT: u64 = 1_000;

/// Open entities a shard holds at most by default: at a few hundred bytes
/// each, well under a gigabyte.
pub const OPEN_ENTITIES_MAX_DEFAULT: usize = 1_000_000;

/// Limits and timings of a shard.
#[derive(Debug, Clone)]
pub struct ShardLimits {
    /// How long idempotency and step records are kept.
    pub retention_ms: u64,
    /// How long a coordinator waits for a step's reply before sending it again.
    pub step_resend_ms: u64,
    /// Most timers (expiries, prunes) handled by one tick, so a tick never turns
    /// into a long stall.
    pub expirations_per_tick_max: usize,
    /// How long an order may take to be authorized before it expires.
    pub order_timeout_ms: u64,
    /// How long a finished payment, order or reservation stays in memory before
    /// it goes to the archive: reads and retries of what just finished (most
    /// retries come within seconds) are answered without a lookup.
    pub finished_in_memory_ms: u64,
    /// Most open payments, orders and reservations (pending or authorized,
    /// not final, held) in memory; a command that would start another is
    /// refused as overloaded (see `ShardCore::take_overloaded`).
    pub open_entities_max: usize,
    /// Memory of the filter of archived keys (see `crate::filter`): taken up
    /// front, and the same however many keys it holds.
    pub archived_filter_bytes: u64,
    /// Change data capture is on: notices also report payments and
    /// reservations (`Notice::Payment`, `Notice::Reservation`), and the actor
    /// stores each batch's notices beside its journal record.
    pub record_changes: bool,
}

impl Default for ShardLimits {
    fn default() -> Self {
        Self {
            retention_ms: decide::RETENTION_MS_DEFAULT,
            step_resend_ms: 1_000,
            expirations_per_tick_max: 10_000,
            order_timeout_ms: order::ORDER_TIMEOUT_MS_DEFAULT,
            finished_in_memory_ms: FINISHED_IN_MEMORY_MS_DEFAULT,
            open_entities_max: OPEN_ENTITIES_MAX_DEFAULT,
            archived_filter_bytes: FILTER_LAYER_BYTES_DEFAULT,
            record_changes: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    token: Token,
    wait: WaitFor,
    replayed: bool,
    /// When the client is answered with the state as it is, final or not.
    answer_by: Option<TimestampMs>,
}

pub struct ShardCore {
    pub id: ShardId,
    pub state: State,
    router: Router,
    limits: ShardLimits,
    /// Shard clock: never goes backwards, whatever the wall clock does.
    now: TimestampMs,
    batch: Batch,
    /// Steps for this very shard, handled within the same batch.
    local: VecDeque<ShardMessage>,
    /// Clients waiting for a payment's saga (volatile: lost in a crash, and those
    /// clients get a retryable error).
    waiters: HashMap<SagaId, Vec<Waiter>>,
    /// When each unfinished saga's outstanding steps were last sent (volatile).
    step_sent_at: BTreeMap<SagaId, TimestampMs>,
    /// Sagas whose waiters should be checked at the end of this input.
    touched: Vec<SagaId>,
    batch_open: bool,
    /// The buffers of a batch already written, emptied, kept for the next batch
    /// (see `recycle`).
    spare: Batch,
    /// Finished entities up to this event are in the archive (volatile: after a
    /// restart the archive is given them again, and stores each once).
    archived_through: u64,
    /// A round of finished entities is on its way to the archive.
    archive_in_flight: bool,
    /// Inputs waiting for a lookup, by the key looked up (volatile: a crash loses
    /// them, and their clients get a retryable error).
    parked: HashMap<ArchiveKey, VecDeque<archive::Parked>>,
    /// Keys to look up, not yet taken by the owner.
    lookups: Vec<ArchiveKey>,
    /// The keys whose parked inputs are running now, after their lookup.
    answered: Vec<ArchiveKey>,
    /// Commands refused because the shard holds `open_entities_max` open
    /// entities: their clients hear "overloaded" at once (nothing changed).
    overloaded: Vec<Token>,
    /// The floor last sent to each shard (volatile: a restarted core sends
    /// every floor again; see `floors`).
    floors_sent: Vec<u64>,
    /// Per shard, one past the highest stamp sent there (volatile: a
    /// restarted core starts from one past its last event; see `floors`).
    floor_bases: Vec<u64>,
    /// When floors are worked out next, and when all are sent again.
    floors_due_at: TimestampMs,
    floors_resend_at: TimestampMs,
}

impl ShardCore {
    pub fn new(id: ShardId, router: Router, limits: ShardLimits, mut state: State) -> Self {
        state.set_archived_filter_bytes(limits.archived_filter_bytes);
        Self {
            id,
            state,
            router,
            limits,
            now: 0,
            batch: Batch::default(),
            local: VecDeque::new(),
            waiters: HashMap::new(),
            step_sent_at: BTreeMap::new(),
            touched: Vec::new(),
            batch_open: false,
            spare: Batch::default(),
            archived_through: 0,
            archive_in_flight: false,
            parked: HashMap::new(),
            lookups: Vec::new(),
            answered: Vec::new(),
            overloaded: Vec::new(),
            floors_sent: Vec::new(),
            floor_bases: Vec::new(),
            floors_due_at: 0,
            floors_resend_at: 0,
        }
    }

    pub fn now(&self) -> TimestampMs {
        self.now
    }

    /// Moves the shard clock forward to `wall_ms` (never backwards).
    pub fn advance_clock(&mut self, wall_ms: TimestampMs) {
        self.now = self.now.max(wall_ms);
    }

    pub fn limits(&self) -> &ShardLimits {
        &self.limits
    }

    /// Replays journaled events (recovery): no undo recording, no outputs.
    pub fn replay(&mut self, events: &[Event]) {
        for event in events {
            self.state.apply(event);
            if let Some(at) = event_time(event) {
                self.now = self.now.max(at);
            }
        }
    }

    /// After recovery: sends every unfinished saga's outstanding step again.
    /// Steps are idempotent, so a step that did arrive before the crash is answered
    /// from its record.
    pub fn redrive(&mut self) {
        self.open_batch();
        let payments = self
            .state
            .payments
            .iter()
            .filter(|(_, payment)| payment.outstanding_step().is_some())
            .map(|(id, _)| SagaId::Payment(id.clone()));
        let orders = self
            .state
            .orders
            .iter()
            .filter(|(_, order)| !order.is_final())
            .map(|(id, _)| SagaId::Order(id.clone()));
        // Sorted, so that replay and simulation send in a reproducible order.
        let pending: std::collections::BTreeSet<SagaId> = payments.chain(orders).collect();
        for saga in pending {
            self.send_outstanding_step(&saga);
        }
        self.drain_local();
    }

    /// Opens a batch (undo recording on) unless one is open already.
    fn open_batch(&mut self) {
        if !self.batch_open {
            self.batch_open = true;
            self.state.set_recording(true);
        }
    }

    /// Whether inputs were handled since the last commit or rollback.
    pub fn batch_open(&self) -> bool {
        self.batch_open
    }

    /// Events in the open batch.
    pub fn open_events(&self) -> usize {
        self.batch.events.len()
    }

    /// Handles a client command, or parks it while the entity it names is looked
    /// up in the archive. Returns whether it was decided now (a parked one is
    /// decided when its lookup is answered: see `looked_up`).
    pub fn command(&mut self, token: Token, command: Command) -> bool {
        match self.park_command(token, command) {
            Some(command) => {
                self.decide_command(token, command);
                true
            }
            None => false,
        }
    }

    /// Plans, decides and answers a command whose entity is in memory (or known
    /// to be nowhere).
    fn decide_command(&mut self, token: Token, command: Command) {
        self.open_batch();
        match decide::plan(&self.state, &command) {
            Plan::Answer(reply) => self.batch.replies.push((token, reply)),
            Plan::Wait(wait, replayed) => {
                if let Some(saga) = saga_of(&command) {
                    let answer_by = self.answer_by(&command);
                    self.add_waiter(saga.clone(), token, wait, replayed, answer_by);
                    self.touched.push(saga);
                }
            }
            Plan::Decide if self.at_open_ceiling(&command) => self.overloaded.push(token),
            Plan::Decide => match decide::decide(
                &self.state,
                &command,
                self.now,
                self.limits.order_timeout_ms,
            ) {
                Ok(events) => {
                    for event in events {
                        let event = self.run_locally_if_possible(event);
                        self.emit(event);
                    }
                    if let Some(outcome) = decide::op_outcome_after(&self.state, &command) {
                        self.record_op(&command, outcome);
                    }
                    match decide::answer(&self.state, &command) {
                        Ok(reply) => self.batch.replies.push((token, reply)),
                        Err(wait) => {
                            // Every saga command names its payment or order.
                            let saga = saga_of(&command).expect("saga command names its saga");
                            let answer_by = self.answer_by(&command);
                            self.add_waiter(saga.clone(), token, wait, false, answer_by);
                            self.touched.push(saga);
                        }
                    }
                }
                Err(rejection) => {
                    self.record_op(&command, OpOutcome::Rejected(rejection));
                    self.batch.replies.push((token, Reply::rejected(rejection)));
                }
            },
        }
        self.drain_local();
    }

    /// Whether `command` would start an open entity while the shard holds as many
    /// as it may.
    fn at_open_ceiling(&self, command: &Command) -> bool {
        decide::starts_open_entity(command)
            && self.state.open_entities() >= self.limits.open_entities_max
    }

    /// Commands refused at the open-entity ceiling since the last call.
    pub fn take_overloaded(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.overloaded)
    }

    /// Handles a message from another shard (or this one).
    pub fn message(&mut self, message: ShardMessage) {
        self.open_batch();
        self.local.push_back(message);
        self.drain_local();
    }

    fn emit(&mut self, event: Event) {
        let order_version_before = notices::order_version_before(&self.state, &event);
        let payment_before = self
            .limits
            .record_changes
            .then(|| notices::payment_status_before(&self.state, &event));
        // The accounts and items an event changes in its middle are heard as they
        // were then; the rest is read from the state after the event (`notice`).
        // (Only `RecordsPruned` has no time, and it changes no account or item.)
        let at = event_time(&event).unwrap_or(self.now);
        let (state, notices) = (&mut self.state, &mut self.batch.notices);
        state.apply_with(&event, &mut |state, changed| {
            notices.extend(notices::changed_notice(state, changed, at))
        });
        if let Some(saga) = event.saga() {
            self.send_outstanding_step(&saga);
            self.touched.push(saga);
        }
        self.notice(&event, order_version_before);
        if let Some(payment_before) = payment_before {
            self.change(&event, payment_before);
        }
        self.batch.events.push(event);
    }

    fn send_outstanding_step(&mut self, saga: &SagaId) {
        match saga {
            SagaId::Payment(id) => self.send_payment_step(id),
            SagaId::Order(id) => self.send_order_steps(id),
        }
    }

    fn send(&mut self, to: ShardId, message: ShardMessage) {
        if to == self.id {
            self.local.push_back(message);
        } else {
            self.batch.messages.push(Envelope { to, message });
        }
    }

    /// Handles messages addressed to this shard until none are left, then answers
    /// the clients whose payments moved.
    fn drain_local(&mut self) {
        while let Some(message) = self.local.pop_front() {
            match message {
                ShardMessage::Step(request) => self.handle_step(request),
                ShardMessage::StepReply(reply) => self.handle_step_reply(reply),
                ShardMessage::LineStep(request) => self.handle_line_step(request),
                ShardMessage::LineStepReply(reply) => self.handle_line_step_reply(reply),
                ShardMessage::StepFloor(floor) => self.handle_step_floor(floor),
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for saga in touched {
            self.wake(&saga);
        }
    }
}

fn saga_of(command: &Command) -> Option<SagaId> {
    match command {
        Command::CreatePayment { id, .. }
        | Command::CapturePayment { id, .. }
        | Command::VoidPayment { id, .. } => Some(SagaId::Payment(id.clone())),
        Command::CreateOrder { id, .. } | Command::CancelOrder { id, .. } => {
            Some(SagaId::Order(id.clone()))
        }
        Command::CreateAccount { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::CreateItem { .. }
        | Command::Restock { .. }
        | Command::Reserve { .. }
        | Command::CommitReservation { .. }
        | Command::ReleaseReservation { .. } => None,
    }
}

/// The time an event happened, to keep the shard clock monotonic across restarts.
fn event_time(event: &Event) -> Option<TimestampMs> {
    match event {
        Event::AccountCreated { at, .. }
        | Event::BalanceChanged { at, .. }
        | Event::PaymentCreated { at, .. }
        | Event::PaymentStepCompleted { at, .. }
        | Event::PaymentStepAppliedLocally { at, .. }
        | Event::PaymentRunLocally { at, .. }
        | Event::PaymentCaptureRequested { at, .. }
        | Event::PaymentReleaseRequested { at, .. }
        | Event::StepApplied { at, .. }
        | Event::ItemCreated { at, .. }
        | Event::Restocked { at, .. }
        | Event::Reserved { at, .. }
        | Event::ReservationClosed { at, .. }
        | Event::OrderCreated { at, .. }
        | Event::OrderRefusedLocally { at, .. }
        | Event::OrderRunLocally { at, .. }
        | Event::OrderRejectedLocally { at, .. }
        | Event::OrderStepCompleted { at, .. }
        | Event::OrderEndRequested { at, .. }
        | Event::LineStepApplied { at, .. }
        | Event::EntityRecalled { at, .. } => Some(*at),
        Event::OpRecorded { record, .. } => Some(record.at),
        Event::RecordsPruned { .. }
        | Event::EntitiesArchived { .. }
        | Event::StepFloorRaised { .. } => None,
    }
}
