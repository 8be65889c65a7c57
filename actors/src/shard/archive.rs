//! Finished entities on their way to the archive, and inputs that wait while the
//! shard looks up one that has left memory (TigerBeetle's prefetch, then execute).
//!
//! Handing over: once a batch is durable, the owner takes what it finished
//! (`take_archivable`), has the archive store it off the shard's thread, and
//! reports back (`archived`); the shard then journals `Event::EntitiesArchived`
//! and the entities leave memory. One round is in flight at a time, so a round
//! that failed is taken again whole before any later one.
//!
//! Looking up: a command or line step that names a payment, order, reservation
//! or operation record the shard does not hold, and that the filter of archived
//! keys may have seen (a new id, in all likelihood, it has not), is parked under
//! that key, and the key goes out in the next lookup (`take_lookups`); inputs
//! for other entities go on meanwhile. Inputs that name a parked key queue behind it, in arrival order.
//! When the answer comes (`looked_up`), a found entity comes back by
//! `Event::EntityRecalled`, and the parked inputs run in order on it, or, when
//! nothing was found, on its absence.

use super::{LineStepRequest, ShardCore, ShardMessage, StepRequest, Token};
use crate::archive::{ArchiveKey, Archived};
use crate::command::Command;
use crate::decide;
use crate::domain::ReservationId;
use crate::event::Event;
use crate::model::{ReservationKey, SagaId, StepKey, StepKind, StepTag};
use std::collections::VecDeque;

/// An input waiting for a lookup.
#[derive(Debug)]
pub(super) enum Parked {
    Command(Token, Command),
    LineStep(LineStepRequest),
    Step(StepRequest),
}

/// What a command may need from the archive before it is planned: the entity it
/// names and its operation's record (a capture retried under its key after both
/// left memory needs both).
fn lookup_keys(command: &Command) -> [Option<ArchiveKey>; 2] {
    [
        decide::named_entity(command),
        decide::op_key(command).map(ArchiveKey::Op),
    ]
}

/// A round of finished entities for the archive.
#[derive(Debug, Clone)]
pub struct ArchiveRound {
    /// Every entity the shard finished up to this event is in `entities` (or was
    /// in an earlier round).
    pub through_seq: u64,
    pub entities: Vec<Archived>,
}

impl ShardCore {
    /// The next round for the archive, if none is in flight and something
    /// finished at least `finished_in_memory_ms` ago that is durable by event
    /// `durable_seq`.
    pub fn take_archivable(&mut self, durable_seq: u64) -> Option<ArchiveRound> {
        if self.archive_in_flight {
            return None;
        }
        let finished_by = self.now.saturating_sub(self.limits.finished_in_memory_ms);
        let (through_seq, entities) =
            self.state
                .archivable(self.archived_through, durable_seq, finished_by);
        if entities.is_empty() {
            return None;
        }
        self.archive_in_flight = true;
        Some(ArchiveRound {
            through_seq,
            entities,
        })
    }

    /// The archive stored the round taken through `through_seq` (`stored`), or
    /// failed to (the same entities go again in the next round). The owner only
    /// reports rounds this very core took.
    pub fn archived(&mut self, through_seq: u64, stored: bool) {
        self.archive_in_flight = false;
        if !stored {
            return;
        }
        self.archived_through = through_seq;
        self.open_batch();
        self.emit(Event::EntitiesArchived { through_seq });
        self.drain_local();
    }

    /// Parks a command while any of its `lookup_keys` must be looked up first;
    /// returns it when none must.
    pub(super) fn park_command(&mut self, token: Token, command: Command) -> Option<Command> {
        let keys: Vec<ArchiveKey> = lookup_keys(&command).into_iter().flatten().collect();
        let Some(key) = self.wait_key(keys) else {
            return Some(command);
        };
        self.park(key, Parked::Command(token, command));
        None
    }

    /// A line step whose record is not in memory: the record, and the
    /// reservation it acts on, may have left for the archive.
    pub(super) fn park_line_step(&mut self, request: LineStepRequest) -> Option<LineStepRequest> {
        let step = StepKey {
            saga: SagaId::Order(request.order.clone()),
            tag: request.kind.tag(request.line),
        };
        if self.state.steps.contains_key(&step) {
            return Some(request);
        }
        let reservation = ArchiveKey::Reservation(ReservationKey {
            sku: request.sku.clone(),
            id: ReservationId::for_order_line(&request.order, request.line),
        });
        let Some(key) = self.wait_key(vec![ArchiveKey::Step(step), reservation]) else {
            return Some(request);
        };
        self.park(key, Parked::LineStep(request));
        None
    }

    /// A money step whose record is not in memory: it may have left for the
    /// archive (a resend after the step was applied long ago). A payment's own
    /// debit, credit or refund on its coordinator's shard keeps no record.
    pub(super) fn park_step(&mut self, request: StepRequest) -> Option<StepRequest> {
        let local = request.reply_to == self.id
            && matches!(request.saga, SagaId::Payment(_))
            && matches!(
                request.kind,
                StepKind::Debit { .. } | StepKind::Credit { .. } | StepKind::Refund { .. }
            );
        if local {
            return Some(request);
        }
        let tag = request.kind.tag();
        let family = [StepTag::Hold, StepTag::Release, StepTag::Capture];
        let tags: &[StepTag] = if family.contains(&tag) {
            &family
        } else {
            std::slice::from_ref(&tag)
        };
        // The common case, a first send of a step none of whose records can be
        // archived: no key is built.
        let archived = |t: &StepTag| self.state.step_may_be_archived(&request.saga, *t);
        if self.parked.is_empty() && !tags.iter().any(archived) {
            return Some(request);
        }
        let step = StepKey {
            saga: request.saga.clone(),
            tag,
        };
        // Whether a hold is active depends on its record and on its closing
        // steps' records together: they come back together, the hold first (so
        // it leaves memory no later than what closed it).
        let keys = match step.tag {
            StepTag::Hold | StepTag::Release | StepTag::Capture => {
                [StepTag::Hold, StepTag::Release, StepTag::Capture]
                    .into_iter()
                    .map(|tag| {
                        ArchiveKey::Step(StepKey {
                            saga: step.saga.clone(),
                            tag,
                        })
                    })
                    .collect()
            }
            StepTag::Debit
            | StepTag::Credit
            | StepTag::Refund
            | StepTag::Validate
            | StepTag::ReserveLine(_)
            | StepTag::CommitLine(_)
            | StepTag::ReleaseLine(_) => vec![ArchiveKey::Step(step)],
        };
        let Some(key) = self.wait_key(keys) else {
            return Some(request);
        };
        self.park(key, Parked::Step(request));
        None
    }

    /// The key an input with these keys must wait on, if any: one already out
    /// in a lookup, or else the first not in memory, with every other key it
    /// lacks sent in the same lookup.
    ///
    /// An input with two keys thus runs in the very call that answers both, so
    /// that neither can leave memory (a round of the archive) or appear in it
    /// between the two answers.
    fn wait_key(&mut self, keys: Vec<ArchiveKey>) -> Option<ArchiveKey> {
        if !keys.iter().any(|key| self.lookup_needed(key)) {
            return None;
        }
        if let Some(out) = keys.iter().find(|key| self.parked.contains_key(*key)) {
            return Some(out.clone());
        }
        let missing: Vec<ArchiveKey> = keys
            .into_iter()
            .filter(|key| !self.state.holds(key))
            .collect();
        // Some key is needed and none is out: a needed key is not in memory.
        let first = missing.first()?.clone();
        for key in missing {
            self.park_key(key);
        }
        Some(first)
    }

    fn lookup_needed(&self, key: &ArchiveKey) -> bool {
        if !self.answered.is_empty() && self.answered.contains(key) {
            // Its lookup has just been answered: the inputs it held run now.
            return false;
        }
        if !self.parked.is_empty() && self.parked.contains_key(key) {
            return true;
        }
        // The filter first: for a new id it answers "certainly not" before the
        // entity maps are searched (which plan searches again anyway).
        self.state.may_be_archived(key) && !self.state.holds(key)
    }

    fn park(&mut self, key: ArchiveKey, input: Parked) {
        self.park_key(key.clone());
        if let Some(queue) = self.parked.get_mut(&key) {
            queue.push_back(input);
        }
    }

    /// Makes sure `key` is being looked up (later inputs naming it queue behind).
    fn park_key(&mut self, key: ArchiveKey) {
        if !self.parked.contains_key(&key) {
            self.lookups.push(key.clone());
            self.parked.insert(key, VecDeque::new());
        }
    }

    /// Keys to look up in the archive, each once.
    pub fn take_lookups(&mut self) -> Vec<ArchiveKey> {
        std::mem::take(&mut self.lookups)
    }

    /// The archive answered lookups: what it holds of each key asked for (a key
    /// it does not know is absent). Every entity found comes back first, then
    /// the inputs parked on these keys run in order, so a command that needed
    /// two of them finds both. Returns the tokens of the commands it let
    /// through, in the order they were decided.
    pub fn looked_up(&mut self, found: Vec<(ArchiveKey, Option<Archived>)>) -> Vec<Token> {
        let mut decided = Vec::new();
        self.open_batch();
        let mut keys = Vec::with_capacity(found.len());
        for (key, entity) in found {
            if !self.parked.contains_key(&key) {
                continue;
            }
            if let Some(entity) = entity {
                if !self.state.holds(&key) {
                    let at = self.now;
                    self.emit(Event::EntityRecalled { entity, at });
                }
            }
            keys.push(key);
        }
        // Every input parked on these keys, in order, before any runs: one that
        // parks again must ask afresh.
        let inputs: Vec<Parked> = keys
            .iter()
            .filter_map(|key| self.parked.remove(key))
            .flatten()
            .collect();
        self.answered = keys;
        for input in inputs {
            match input {
                // Parked again if another of its keys must still be looked up.
                Parked::Command(token, command) => {
                    if let Some(command) = self.park_command(token, command) {
                        decided.push(token);
                        self.decide_command(token, command);
                    }
                }
                Parked::LineStep(request) => {
                    self.local.push_back(ShardMessage::LineStep(request));
                    self.drain_local();
                }
                Parked::Step(request) => {
                    self.local.push_back(ShardMessage::Step(request));
                    self.drain_local();
                }
            }
        }
        self.answered.clear();
        decided
    }

    /// Drops every parked input; returns the parked commands' tokens.
    pub(super) fn take_parked_tokens(&mut self) -> Vec<Token> {
        let keys: Vec<ArchiveKey> = self.parked.keys().cloned().collect();
        self.lookups.clear();
        self.lookups_failed(&keys)
    }

    /// The lookups of `keys` failed: their parked commands get a retryable
    /// error (their tokens are returned), their line steps are dropped (the
    /// coordinator sends them again).
    pub fn lookups_failed(&mut self, keys: &[ArchiveKey]) -> Vec<Token> {
        let mut tokens = Vec::new();
        for key in keys {
            for input in self.parked.remove(key).into_iter().flatten() {
                match input {
                    Parked::Command(token, _) => tokens.push(token),
                    Parked::LineStep(_) | Parked::Step(_) => {}
                }
            }
        }
        tokens
    }
}
