//! The simulated network between shards: delays, duplicates, losses and (when the
//! scenario allows it) reorders saga messages, deterministically from the run's RNG.
//!
//! Messages from one shard to another arrive in the order they were sent unless the
//! scenario turns on `reorder_within_pair`: the real actor keeps messages a full
//! mailbox refused and sends them on its next tick, after newer ones, and steps are
//! idempotent and keyed by payment, so the design allows it. Across pairs, any
//! interleaving can happen. A duplicate always arrives after its original; a
//! late one (when the scenario allows it) arrives up to several retention periods
//! after it, past every other message of its pair. A partition between two shards
//! loses everything sent either way until it heals, for as long as it lasts,
//! several retention periods included.

use super::rng::SimRng;
use crate::router::ShardId;
use crate::shard::ShardMessage;
use std::collections::BTreeMap;

/// How the network misbehaves in one run.
#[derive(Debug, Clone)]
pub struct NetworkFaults {
    pub delay_ms_max: u64,
    /// Per mille of messages that take up to `slow_delay_ms_max` instead.
    pub slow_per_mille: u64,
    pub slow_delay_ms_max: u64,
    pub duplicate_per_mille: u64,
    pub loss_per_mille: u64,
    pub reorder_within_pair: bool,
    /// Per mille of messages that arrive once more, up to `late_delay_ms_max`
    /// later (longer than every retention: a copy held up in a queue, a
    /// partition, a paused process).
    pub late_duplicate_per_mille: u64,
    pub late_delay_ms_max: u64,
}

/// A message on the wire.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub from: ShardId,
    pub to: ShardId,
    pub message: ShardMessage,
}

#[derive(Debug, Default)]
pub struct NetworkStats {
    pub sent: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub lost: u64,
}

pub struct Network {
    faults: NetworkFaults,
    /// Keyed by (delivery time, send order): popping the first entries gives the
    /// delivery order.
    wire: BTreeMap<(u64, u64), InFlight>,
    next_order: u64,
    /// Latest delivery time per (from, to), to keep each pair in order.
    pair_latest_ms: BTreeMap<(ShardId, ShardId), u64>,
    /// Until when messages from one shard to another are lost (a partition).
    cut_until_ms: BTreeMap<(ShardId, ShardId), u64>,
    pub stats: NetworkStats,
}

impl Network {
    pub fn new(faults: NetworkFaults) -> Self {
        Self {
            faults,
            wire: BTreeMap::new(),
            next_order: 0,
            pair_latest_ms: BTreeMap::new(),
            cut_until_ms: BTreeMap::new(),
            stats: NetworkStats::default(),
        }
    }

    /// Cuts `a` and `b` apart, both ways, until `until_ms`.
    pub fn partition(&mut self, a: ShardId, b: ShardId, until_ms: u64) {
        for pair in [(a, b), (b, a)] {
            let until = self.cut_until_ms.entry(pair).or_insert(0);
            *until = (*until).max(until_ms);
        }
    }

    /// Every partition heals, no new late copy is made, and whatever is held up
    /// on the wire arrives from `now_ms` on, in the order it was due (the world
    /// is being brought to rest: late copies must still arrive, after the sagas
    /// they belong to moved on).
    pub fn heal(&mut self, now_ms: u64) {
        self.cut_until_ms.clear();
        self.faults.late_duplicate_per_mille = 0;
        let wire = std::mem::take(&mut self.wire);
        for ((at_ms, order), message) in wire {
            self.wire.insert((at_ms.min(now_ms), order), message);
        }
        self.pair_latest_ms.clear();
    }

    fn is_cut(&self, from: ShardId, to: ShardId, now_ms: u64) -> bool {
        self.cut_until_ms
            .get(&(from, to))
            .is_some_and(|until| *until > now_ms)
    }

    pub fn send(&mut self, rng: &mut SimRng, now_ms: u64, message: InFlight) {
        self.stats.sent += 1;
        if rng.chance(self.faults.loss_per_mille) || self.is_cut(message.from, message.to, now_ms) {
            self.stats.lost += 1;
            return;
        }
        let delay_ms = self.delay_ms(rng);
        let pair = (message.from, message.to);
        let mut at_ms = now_ms + delay_ms;
        if !self.faults.reorder_within_pair {
            let latest = self.pair_latest_ms.entry(pair).or_insert(0);
            at_ms = at_ms.max(*latest);
            *latest = at_ms;
        }
        if rng.chance(self.faults.duplicate_per_mille) {
            self.stats.duplicated += 1;
            let duplicate_at_ms = at_ms + self.delay_ms(rng);
            self.put(duplicate_at_ms, message.clone());
        }
        if rng.chance(self.faults.late_duplicate_per_mille) {
            self.stats.duplicated += 1;
            let late_at_ms = at_ms + rng.between(1, self.faults.late_delay_ms_max.max(1));
            self.put(late_at_ms, message.clone());
        }
        self.put(at_ms, message);
    }

    fn delay_ms(&self, rng: &mut SimRng) -> u64 {
        if rng.chance(self.faults.slow_per_mille) {
            rng.between(0, self.faults.slow_delay_ms_max)
        } else {
            rng.between(0, self.faults.delay_ms_max)
        }
    }

    fn put(&mut self, at_ms: u64, message: InFlight) {
        self.wire.insert((at_ms, self.next_order), message);
        self.next_order += 1;
    }

    /// Takes every message due by `now_ms`, in delivery order.
    pub fn due(&mut self, now_ms: u64) -> Vec<InFlight> {
        let mut due = Vec::new();
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            due.push(entry.remove());
        }
        self.stats.delivered += due.len() as u64;
        due
    }

    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }

    /// Everything on the wire is lost (the whole process crashed).
    pub fn clear(&mut self) {
        self.stats.lost += self.wire.len() as u64;
        self.wire.clear();
        self.pair_latest_ms.clear();
    }
}
