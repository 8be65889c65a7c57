//! One simulated shard host: a real [`ShardCore`] driven exactly the way the shard
//! actor drives it (see `actor.rs`): inputs from a mailbox, then flush = take the
//! batch, append it to the journal, and commit and release, or roll back, fail the
//! batch's clients with "retry" and resynchronise from the journal. Crashes lose
//! everything that is not journaled; recovery is the actor's own path
//! (`recover_state`, [`build_core`], `redrive`).

use super::workload::RequestId;
use crate::command::{Command, Reply};
use crate::event::Event;
use crate::journal::{Journal, JournalError, JournalRecord, Lookups, MemoryJournal};
use crate::recovery::build_core;
use crate::recovery::recover_state;
use crate::router::{Router, ShardId};
use crate::shard::{Batch, Envelope, ShardCore, ShardLimits, ShardMessage, Token};
use futures::executor::block_on;
use std::collections::{BTreeMap, VecDeque};

/// What sits in a shard's mailbox.
#[derive(Debug, Clone)]
pub enum Input {
    Command(RequestId, Command),
    Message(ShardMessage),
    Tick,
    /// The archive's answer to lookups, for the core of `generation`.
    LookedUp(u64, Lookups),
    /// The archive stored (or failed to store) a round taken through a sequence
    /// number, for the core of `generation`.
    Archived {
        generation: u64,
        through_seq: u64,
        stored: bool,
    },
}

/// What a client hears back.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Reply(Reply),
    /// The outcome is unknown (the shard crashed, or the journal write failed).
    Retry,
}

/// Where a flush is interrupted, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The journal refuses the write; nothing lands.
    WriteFails,
    /// The write lands but the journal reports a failure (a timeout after commit).
    WriteLandsButFails,
    /// The process dies with the batch decided but not written.
    CrashBeforeWrite,
    /// The process dies with the batch durable but neither replies nor messages out.
    CrashAfterWrite,
}

/// What the shared parts of the world lend a node for one call.
pub struct Env<'a> {
    pub journal: &'a MemoryJournal,
    pub router: Router,
    pub limits: &'a ShardLimits,
    pub hash_seed: u64,
    pub now_ms: u64,
}

/// What a node call produced, for the world to route.
#[derive(Debug, Default)]
pub struct Output {
    pub answers: Vec<(RequestId, Answer)>,
    pub messages: Vec<Envelope>,
    /// Events that reached the journal, in sequence order, per shard.
    pub journaled: Vec<(ShardId, Vec<Event>)>,
    /// Client requests that reached `decide`, and when.
    pub decided: Vec<(RequestId, u64)>,
    /// Journal errors that no fault injection explains (a bug).
    pub unexpected: Vec<JournalError>,
    pub crashed: bool,
}

pub struct Node {
    pub id: ShardId,
    /// `None` while the shard is down (crashed and not yet recovered).
    pub core: Option<ShardCore>,
    epoch: u64,
    durable_seq: u64,
    /// A journal write failed: memory may be behind the journal. Until the shard has
    /// re-read it, client commands are refused and saga messages dropped, as in the
    /// actor.
    pub resync_needed: bool,
    pub inbox: VecDeque<Input>,
    /// Clients waiting for an answer, by token (the actor's responders).
    pending: BTreeMap<Token, RequestId>,
    next_token: Token,
    /// Counts the cores built, as the actor does: archive answers for an earlier
    /// core are dropped.
    generation: u64,
}

impl Node {
    pub fn new(id: ShardId) -> Self {
        Self {
            id,
            core: None,
            epoch: 0,
            durable_seq: 0,
            resync_needed: false,
            inbox: VecDeque::new(),
            pending: BTreeMap::new(),
            next_token: 0,
            generation: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.core.is_some()
    }

    /// Starts (or restarts) the shard from the journal, as the actor's `started`.
    pub fn recover(&mut self, env: &Env, out: &mut Output) -> Result<(), JournalError> {
        let epoch = block_on(env.journal.acquire(self.id))?;
        let recovered = block_on(env.journal.load(self.id))?;
        let (state, events) = recover_state(self.id, &recovered, env.hash_seed)?;
        let mut core = build_core(
            self.id,
            env.router,
            env.limits.clone(),
            state,
            &events,
            env.now_ms,
        );
        core.redrive();
        self.epoch = epoch;
        self.durable_seq = core.state.last_seq;
        self.core = Some(core);
        self.generation += 1;
        self.resync_needed = false;
        self.flush(env, Fault::None, out);
        Ok(())
    }

    /// Re-reads the journal after a failed write, as the actor's `resync`.
    fn resync(&mut self, env: &Env, out: &mut Output) -> Result<(), JournalError> {
        let recovered = block_on(env.journal.load(self.id))?;
        let (state, events) = recover_state(self.id, &recovered, env.hash_seed)?;
        let mut core = build_core(
            self.id,
            env.router,
            env.limits.clone(),
            state,
            &events,
            env.now_ms,
        );
        if let Some(old) = self.core.as_mut() {
            // The waiters' map has no order; sort so the run stays reproducible.
            let mut tokens = old.take_waiters();
            tokens.sort_unstable();
            for token in tokens {
                self.answer(token, Answer::Retry, out);
            }
        }
        core.redrive();
        self.durable_seq = core.state.last_seq;
        self.core = Some(core);
        self.generation += 1;
        self.resync_needed = false;
        Ok(())
    }

    /// Handles up to `inputs_max` mailbox entries, then flushes with `fault`.
    pub fn activate(&mut self, env: &Env, inputs_max: usize, fault: Fault, out: &mut Output) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        core.advance_clock(env.now_ms);
        for _ in 0..inputs_max {
            let Some(input) = self.inbox.pop_front() else {
                break;
            };
            match input {
                Input::Command(request, _) if self.resync_needed => {
                    out.answers.push((request, Answer::Retry));
                }
                Input::Command(request, command) => {
                    self.next_token += 1;
                    self.pending.insert(self.next_token, request);
                    let core = self.core.as_mut().expect("the node is up");
                    if core.command(self.next_token, command) {
                        out.decided.push((request, env.now_ms));
                    }
                }
                // Dropped, as the actor does: coordinators resend unanswered steps.
                Input::Message(_) if self.resync_needed => {}
                Input::Message(message) => {
                    let core = self.core.as_mut().expect("the node is up");
                    core.message(message);
                }
                Input::Tick if self.resync_needed => {
                    if let Err(error) = self.resync(env, out) {
                        note_unexpected(error, out);
                    }
                }
                Input::Tick => self.core.as_mut().expect("the node is up").tick(),
                Input::LookedUp(generation, found) => {
                    if generation == self.generation && !self.resync_needed {
                        let core = self.core.as_mut().expect("the node is up");
                        for token in core.looked_up(found) {
                            if let Some(request) = self.pending.get(&token) {
                                out.decided.push((*request, env.now_ms));
                            }
                        }
                    }
                }
                Input::Archived {
                    generation,
                    through_seq,
                    stored,
                } => {
                    if generation == self.generation {
                        let core = self.core.as_mut().expect("the node is up");
                        core.archived(through_seq, stored && !self.resync_needed);
                    }
                }
            }
        }
        if let Some(core) = self.core.as_mut() {
            // Overloaded, as the actor answers them: nothing happened.
            for token in core.take_overloaded() {
                self.answer(token, Answer::Retry, out);
            }
        }
        self.flush(env, fault, out);
        self.send_lookups(env, out);
        self.archive_finished(env);
    }

    /// The actor's `send_lookups`: the archive is read now; its answer arrives
    /// behind whatever the mailbox holds already (late, after other inputs).
    fn send_lookups(&mut self, env: &Env, out: &mut Output) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let keys = core.take_lookups();
        if keys.is_empty() {
            return;
        }
        match block_on(env.journal.lookup(keys.clone())) {
            Ok(found) => self
                .inbox
                .push_back(Input::LookedUp(self.generation, found)),
            Err(error) => {
                note_unexpected(error, out);
                let mut tokens = core.lookups_failed(&keys);
                tokens.sort_unstable();
                for token in tokens {
                    self.answer(token, Answer::Retry, out);
                }
            }
        }
    }

    /// The actor's `archive_finished`: the archive stores the round now; the
    /// shard hears of it behind whatever the mailbox holds (a crash before then
    /// loses the news, and the round goes again after recovery).
    fn archive_finished(&mut self, env: &Env) {
        if self.resync_needed {
            return;
        }
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let Some(round) = core.take_archivable(self.durable_seq) else {
            return;
        };
        let stored = block_on(env.journal.archive(self.id, round.entities)).is_ok();
        self.inbox.push_back(Input::Archived {
            generation: self.generation,
            through_seq: round.through_seq,
            stored,
        });
    }

    /// The actor's flush: journal the batch, then release or roll back.
    fn flush(&mut self, env: &Env, fault: Fault, out: &mut Output) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if !core.batch_open() {
            if fault == Fault::CrashBeforeWrite || fault == Fault::CrashAfterWrite {
                self.crash(out);
            }
            return;
        }
        let batch = core.take_batch();
        if fault == Fault::CrashBeforeWrite {
            self.crash(out);
            return;
        }
        if batch.events.is_empty() {
            core.commit();
            if fault == Fault::CrashAfterWrite {
                self.crash(out);
                return;
            }
            self.release(batch, out);
            return;
        }
        let record =
            JournalRecord::encode(self.id, self.epoch, self.durable_seq + 1, &batch.events);
        let last_seq = record.last_seq;
        let result = match fault {
            Fault::WriteFails => Err(JournalError::Unavailable("injected".into())),
            _ => block_on(env.journal.append(record)),
        };
        if result.is_ok() {
            out.journaled.push((self.id, batch.events.clone()));
        }
        let result = match (result, fault) {
            (Ok(()), Fault::WriteLandsButFails) => {
                Err(JournalError::Unavailable("injected after landing".into()))
            }
            (result, _) => result,
        };
        match result {
            Ok(()) => {
                self.durable_seq = last_seq;
                core.commit();
                if fault == Fault::CrashAfterWrite {
                    self.crash(out);
                    return;
                }
                self.release(batch, out);
            }
            Err(error) => {
                if !matches!(error, JournalError::Unavailable(_)) {
                    out.unexpected.push(error);
                }
                core.rollback(self.durable_seq, &batch);
                self.fail_batch(&batch, out);
                self.resync_needed = true;
            }
        }
    }

    fn release(&mut self, batch: Batch, out: &mut Output) {
        for (token, reply) in batch.replies {
            self.answer(token, Answer::Reply(reply), out);
        }
        out.messages.extend(batch.messages);
    }

    fn fail_batch(&mut self, batch: &Batch, out: &mut Output) {
        for (token, _) in &batch.replies {
            self.answer(*token, Answer::Retry, out);
        }
        for token in &batch.new_waiters {
            self.answer(*token, Answer::Retry, out);
        }
    }

    fn answer(&mut self, token: Token, answer: Answer, out: &mut Output) {
        if let Some(request) = self.pending.remove(&token) {
            out.answers.push((request, answer));
        }
    }

    /// The shard dies: memory, mailbox and waiting clients are gone; clients hear
    /// "retry" (in reality, a dropped connection: the outcome is unknown).
    pub fn crash(&mut self, out: &mut Output) {
        self.core = None;
        self.resync_needed = false;
        out.crashed = true;
        for (_, request) in std::mem::take(&mut self.pending) {
            out.answers.push((request, Answer::Retry));
        }
        for input in std::mem::take(&mut self.inbox) {
            if let Input::Command(request, _) = input {
                out.answers.push((request, Answer::Retry));
            }
        }
    }

    pub fn waiting_clients(&self) -> usize {
        self.pending.len()
    }
}

fn note_unexpected(error: JournalError, out: &mut Output) {
    if !matches!(error, JournalError::Unavailable(_)) {
        out.unexpected.push(error);
    }
}
