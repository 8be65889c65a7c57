//! Rebuilding a shard core from what the journal holds. The shard actor and the
//! simulator both come through here, so the simulator's crashes exercise the very
//! recovery the actor runs.

use crate::event::Event;
use crate::journal::{JournalError, Recovered, Snapshot};
use crate::router::{Router, ShardId};
use crate::shard::{ShardCore, ShardLimits};
use crate::state::State;

/// A core holding `state` (from the newest snapshot, or empty) with the journaled
/// `events` after it replayed, its clock at `now_ms` or at the newest replayed
/// event, whichever is later. The caller then calls [`ShardCore::redrive`] so that
/// every unfinished saga sends its outstanding step again.
pub fn build_core(
    id: ShardId,
    router: Router,
    limits: ShardLimits,
    state: State,
    events: &[Event],
    now_ms: u64,
) -> ShardCore {
    let mut core = ShardCore::new(id, router, limits, state);
    core.replay(events);
    core.advance_clock(now_ms);
    core
}

/// [`build_core`], refusing a journal that does not replay as corrupt instead
/// of panicking: events that name an entity the state does not hold were not
/// written by this engine (they passed the checksum, so damage came before it),
/// and the shard must stay down with the reason rather than restart into the
/// same panic again and again.
pub fn rebuild_core(
    id: ShardId,
    router: Router,
    limits: ShardLimits,
    state: State,
    events: &[Event],
    now_ms: u64,
) -> Result<ShardCore, JournalError> {
    let replay =
        std::panic::AssertUnwindSafe(|| build_core(id, router, limits, state, events, now_ms));
    std::panic::catch_unwind(replay).map_err(|panic| {
        let reason = panic_message(&panic);
        JournalError::Corrupt(format!("shard {id}: the journal does not replay: {reason}"))
    })
}

/// Rebuilds a shard's state from what the journal holds, checking that sequence
/// numbers follow each other with no gap and no duplicate.
pub fn recover_state(
    shard: ShardId,
    recovered: &Recovered,
    hash_seed: u64,
) -> Result<(State, Vec<Event>), JournalError> {
    let state = match &recovered.snapshot {
        Some(snapshot) => {
            let mut state = snapshot.decode()?;
            let base = recovered.base.as_ref().map(Snapshot::decode).transpose()?;
            state
                .recovered_from(snapshot.seq, base)
                .map_err(|problem| {
                    JournalError::Corrupt(format!(
                        "shard {shard} snapshot at {}: {problem}",
                        snapshot.seq
                    ))
                })?;
            state.reseed(hash_seed);
            state
        }
        None => State::new(hash_seed),
    };
    let mut events = Vec::new();
    let mut next_seq = state.last_seq + 1;
    for record in &recovered.records {
        if record.last_seq < next_seq {
            // Entirely covered by the snapshot.
            if record.first_seq <= state.last_seq {
                continue;
            }
        }
        if record.first_seq != next_seq {
            return Err(JournalError::Corrupt(format!(
                "shard {shard}: expected sequence {next_seq}, found record {}..={}",
                record.first_seq, record.last_seq
            )));
        }
        events.extend(record.decode()?);
        next_seq = record.last_seq + 1;
    }
    Ok((state, events))
}

/// What a caught panic said.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic".to_owned()
    }
}
