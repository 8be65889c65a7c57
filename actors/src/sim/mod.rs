//! Deterministic simulation of a whole engine. Every shard's real, pure
//! [`ShardCore`](crate::shard::ShardCore) and the real saga logic run in one thread
//! against a simulated clock, network, journal ([`MemoryJournal`](crate::journal::MemoryJournal))
//! and clients, all driven by one seeded RNG: the same seed replays the same run,
//! bit for bit.
//!
//! Covered: accounts, deposits and withdrawals, payments (both sagas), items,
//! restocks, reservations, and orders: multi-line orders over same- and
//! cross-shard items, with cancels racing every stage of the saga, deadlines
//! (some scenarios make them short enough to race every step), clients that wait
//! for the end or only a while, and retries under the same id with the same and
//! other bodies. Not covered: reads (`Query`) and feeds.
//!
//! Faults: messages delayed, duplicated (sometimes much later), lost and
//! reordered; partitions between shards; shards crashing at
//! random points, including between the journal write and the replies and between
//! saga steps, then rebuilding from snapshot and journal through the actor's own
//! recovery path; journal writes failing (before or after landing) and journal
//! outages. After every step the checks of [`checks`] run (no oversell, order
//! reservations included; money conserved per payment and per order, holds
//! included); at the end the world is brought to quiescence and checked whole
//! (every payment and order final, an order's end matching its stock and money,
//! every answer a client got agreeing with the end, replay equal to live state).
//!
//! Nothing in the engine may depend on how long anything takes: now and then a
//! clock jump, a shard's downtime or a partition between two shards lasts longer
//! than every retention (up to three of them), and a message may arrive once
//! more that long after it was sent. Saga steps still apply once (step records
//! go by the coordinator's floor, never by time: see `crate::model::StepOrigin`),
//! and at the end no step record is left on any shard. Only client idempotency
//! has a time limit, its retention, and the checks promise replays only within
//! it.
//!
//! # Layout
//!
//! * [`rng`]: the seeded xoshiro256** generator, the only source of randomness.
//! * [`network`]: the simulated network between shards.
//! * [`node`]: a shard host that drives a `ShardCore` the way the actor does.
//! * [`workload`]: the clients, their requests and the checks on every answer.
//! * [`checks`]: the invariants, after every step and at quiescence.
//! * [`world`]: everything together, one step at a time.

pub mod checks;
pub mod network;
pub mod node;
pub mod rng;
pub mod workload;
pub mod world;

pub use world::{OrderTally, SimConfig, SimFailure, SimReport, World};

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs one seed: `config.steps` random steps with checks after each, then
/// quiescence and the final checks. An engine panic is a failure like any other,
/// reported with the seed and the step.
pub fn run(config: &SimConfig) -> Result<SimReport, SimFailure> {
    let mut step = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut world = World::new(config);
        world.start()?;
        for n in 0..config.steps {
            step = Some(n);
            world.step()?;
            world.check_step()?;
        }
        step = None;
        quiesce(&mut world)?;
        Ok(world.finish_report())
    }));
    let message = match result {
        Ok(Ok(report)) => return Ok(report),
        Ok(Err(message)) => message,
        Err(panic) => panic_message(&panic),
    };
    Err(SimFailure {
        seed: config.seed,
        step,
        steps: config.steps,
        message,
    })
}

/// Stops new work and faults, lets everything settle, retries what clients never
/// heard back about and every acknowledged request (each must answer as before),
/// then lets every timer fire and checks the end state.
fn quiesce(world: &mut World) -> Result<(), String> {
    world.settle()?;
    world.check_step()?;
    let unknown = world.workload.unknown_commands();
    world.send_and_settle(unknown)?;
    let acknowledged = world.workload.canonical_commands();
    world.send_and_settle(acknowledged)?;
    world.check_step()?;
    world.expire_everything()?;
    world.check_final()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic".to_owned()
    };
    format!("engine panicked: {text}")
}
