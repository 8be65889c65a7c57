//! Rebuilding a shard core from what the journal holds. The shard actor and the
//! simulator both come through here, so the simulator's crashes exercise the very
//! recovery the actor runs.

use crate::event::Event;
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
