//! The engine test cluster every test binary of `surge-actors` shares: real
//! `ShardCore`s routed by a real `Router`, with a network that holds their
//! messages until the test delivers them, a journal per shard that keeps every
//! committed event, the notices each shard gave its feeds and the replies its
//! clients got. Time moves only by hand; nothing is random.
//!
//! Each binary compiles this module (`mod common;`) and uses only part of it,
//! hence `dead_code` is allowed here.
#![allow(dead_code)]

use rust_decimal::Decimal;
use std::collections::VecDeque;
use surge_actors::archive::{ArchiveKey, Archived};
use surge_actors::command::{Command, Reply};
use surge_actors::domain::{AccountId, OrderId, Sku};
use surge_actors::event::Event;
use surge_actors::notice::Notice;
use surge_actors::order::{Order, OrderStatus};
use surge_actors::rejection::Rejection;
use surge_actors::router::{Router, ShardId};
use surge_actors::shard::{Envelope, ShardCore, ShardLimits, ShardMessage, Token};
use surge_actors::state::State;

/// Deliveries `run_until_quiet` makes before it declares the messages stuck
/// (a saga loop).
pub const DELIVERIES_UNTIL_QUIET_MAX: usize = 10_000;

/// How a cluster is made.
#[derive(Debug, Clone)]
pub struct Config {
    pub shards: u32,
    pub limits: ShardLimits,
    /// The seed of every shard's state hasher.
    pub hash_seed: u64,
    /// The clock every shard starts at.
    pub start_ms: u64,
    /// Whether finished entities go to the archive after each batch (and leave
    /// memory). Off, nothing is ever archived, and lookups find nothing.
    pub archiving: bool,
}

impl Config {
    /// `shards` shards with default limits, hash seed 0, starting at 1,000 ms.
    pub fn new(shards: u32) -> Self {
        Self {
            shards,
            limits: ShardLimits::default(),
            hash_seed: 0,
            start_ms: 1_000,
            archiving: false,
        }
    }
}

/// Shards with a network the test pumps and an in-memory journal per shard.
pub struct Cluster {
    pub router: Router,
    pub cores: Vec<ShardCore>,
    /// Every event each shard journaled (committed), in order.
    pub journals: Vec<Vec<Event>>,
    /// Every notice each shard gave its feeds, in order.
    pub notices: Vec<Vec<Notice>>,
    /// Every reply any client got, in order.
    pub replies: Vec<(Token, Reply)>,
    /// Clients told "overloaded" (the shard was at its open-entity ceiling).
    pub overloaded: Vec<Token>,
    /// Messages sent and not delivered yet, oldest first.
    pub in_flight: VecDeque<Envelope>,
    /// The wall clock every input is handled at.
    pub now: u64,
    /// Each shard's last durable sequence number (what a failed write goes back to).
    durable_seq: Vec<u64>,
    next_token: Token,
    hash_seed: u64,
    /// Finished entities the shards handed over (see `Config::archiving`).
    pub archive: std::collections::BTreeMap<ArchiveKey, Archived>,
    archiving: bool,
}

impl Cluster {
    pub fn new(shards: u32) -> Self {
        Self::with(Config::new(shards))
    }

    pub fn with(config: Config) -> Self {
        let router = Router::new(config.shards);
        let cores = (0..config.shards)
            .map(|shard| {
                let state = State::new(config.hash_seed);
                let mut core = ShardCore::new(ShardId(shard), router, config.limits.clone(), state);
                core.advance_clock(config.start_ms);
                core
            })
            .collect();
        let shards = config.shards as usize;
        Self {
            router,
            cores,
            journals: vec![Vec::new(); shards],
            notices: vec![Vec::new(); shards],
            replies: Vec::new(),
            overloaded: Vec::new(),
            in_flight: VecDeque::new(),
            now: config.start_ms,
            durable_seq: vec![0; shards],
            next_token: 0,
            hash_seed: config.hash_seed,
            archive: std::collections::BTreeMap::new(),
            archiving: config.archiving,
        }
    }

    /// The shard that owns `key` (an account id, a sku, an order id...).
    pub fn shard(&self, key: &str) -> usize {
        self.router.shard_for(key).0 as usize
    }

    /// The first id `{prefix}{n}` that lives on (`on`) or off (`!on`) `shard`.
    pub fn id_where(&self, prefix: &str, shard: usize, on: bool) -> String {
        (0..)
            .map(|n| format!("{prefix}{n}"))
            .find(|id| (self.shard(id) == shard) == on)
            .expect("some id routes anywhere")
    }

    /// Sends a client command to the shard that owns it and commits the batch.
    /// Messages it sends wait in `in_flight`.
    pub fn command(&mut self, command: Command) -> Token {
        self.command_with(command, false)
    }

    /// Like `command`, but the journal write of the command's batch fails (if it
    /// has events to write): everything it did goes back, and none of its
    /// replies or messages leave.
    pub fn command_failing_write(&mut self, command: Command) -> Token {
        self.command_with(command, true)
    }

    fn command_with(&mut self, command: Command, fail: bool) -> Token {
        let shard = self.shard(command.route_key());
        self.next_token += 1;
        let token = self.next_token;
        let core = &mut self.cores[shard];
        core.advance_clock(self.now);
        core.command(token, command);
        self.flush(shard, fail);
        token
    }

    /// Hands `message` to `shard` from outside the cluster and commits the batch.
    pub fn message(&mut self, shard: usize, message: ShardMessage) {
        let core = &mut self.cores[shard];
        core.advance_clock(self.now);
        core.message(message);
        self.flush(shard, false);
    }

    /// Delivers messages in the order they were sent until none are left or
    /// `limit` were delivered; returns how many were.
    pub fn deliver(&mut self, limit: usize) -> usize {
        for delivered in 0..limit {
            let Some(envelope) = self.in_flight.pop_front() else {
                return delivered;
            };
            self.message(envelope.to.0 as usize, envelope.message);
        }
        limit
    }

    /// Delivers messages until none are left; panics if they never settle.
    pub fn run_until_quiet(&mut self) {
        let mut deliveries = 0;
        while let Some(envelope) = self.in_flight.pop_front() {
            deliveries += 1;
            assert!(
                deliveries < DELIVERIES_UNTIL_QUIET_MAX,
                "saga messages never settle"
            );
            self.message(envelope.to.0 as usize, envelope.message);
        }
    }

    /// Moves the clock by `advance_ms` and ticks every shard (expiries, prunes,
    /// resends), committing each batch. Delivers nothing.
    pub fn tick(&mut self, advance_ms: u64) {
        self.now += advance_ms;
        for shard in 0..self.cores.len() {
            self.cores[shard].advance_clock(self.now);
            self.cores[shard].tick();
            self.flush(shard, false);
        }
    }

    /// Loses every message in flight to `shard`.
    pub fn lose_messages_to(&mut self, shard: usize) {
        self.in_flight
            .retain(|envelope| envelope.to.0 as usize != shard);
    }

    /// A crash of one shard: everything in memory goes, the journal is replayed,
    /// unfinished sagas are driven again. Messages in flight stay in flight.
    pub fn crash(&mut self, shard: usize) {
        let limits = self.cores[shard].limits().clone();
        let state = State::new(self.hash_seed);
        let mut core = ShardCore::new(ShardId(shard as u32), self.router, limits, state);
        core.replay(&self.journals[shard]);
        core.advance_clock(self.now);
        core.redrive();
        self.cores[shard] = core;
        self.flush(shard, false);
    }

    /// Writes the shard's batch (see `write_batch`), then answers the lookups its
    /// inputs wait on and, when archiving, hands the archive what finished, each
    /// followed by a write of what that did, until the shard asks for nothing.
    fn flush(&mut self, shard: usize, fail: bool) {
        let overloaded = self.cores[shard].take_overloaded();
        self.overloaded.extend(overloaded);
        self.write_batch(shard, fail);
        loop {
            let keys = self.cores[shard].take_lookups();
            if !keys.is_empty() {
                let found = keys
                    .into_iter()
                    .map(|key| {
                        let entity = self.archive.get(&key).cloned();
                        (key, entity)
                    })
                    .collect();
                self.cores[shard].looked_up(found);
                self.write_batch(shard, false);
                continue;
            }
            let durable_seq = self.durable_seq[shard];
            let round = match self.archiving {
                true => self.cores[shard].take_archivable(durable_seq),
                false => None,
            };
            let Some(round) = round else {
                break;
            };
            for entity in round.entities {
                self.archive.entry(entity.key()).or_insert(entity);
            }
            self.cores[shard].archived(round.through_seq, true);
            self.write_batch(shard, false);
        }
    }

    /// Takes the shard's batch and writes it: committed, or rolled back when
    /// `fail` and it has events.
    fn write_batch(&mut self, shard: usize, fail: bool) {
        let core = &mut self.cores[shard];
        let batch = core.take_batch();
        if fail && !batch.events.is_empty() {
            core.rollback(self.durable_seq[shard], &batch);
            return;
        }
        core.commit();
        if self.journals.len() == 1 {
            assert!(batch.messages.is_empty(), "one shard sends no messages");
        }
        self.durable_seq[shard] = core.state.last_seq;
        self.journals[shard].extend(batch.events);
        self.notices[shard].extend(batch.notices);
        self.replies.extend(batch.replies);
        self.in_flight.extend(batch.messages);
    }

    /// The first reply to `token`, if it was answered.
    pub fn reply(&self, token: Token) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, reply)| reply)
    }

    /// The first reply to `token`; panics if it was not answered.
    pub fn answer(&self, token: Token) -> &Reply {
        self.reply(token).expect("the request was answered")
    }

    /// The state of the shard that owns `key`.
    pub fn state_of(&self, key: &str) -> &State {
        &self.cores[self.shard(key)].state
    }

    pub fn order(&self, id: &str) -> Order {
        let order = self.state_of(id).orders.get(&oid(id)).unwrap();
        (**order).clone()
    }

    /// An item's (on hand, reserved).
    pub fn item(&self, sku: &str) -> (u64, u64) {
        let item = self.state_of(sku).items.get(&sku_of(sku)).unwrap();
        (item.on_hand, item.reserved)
    }

    /// An account's (balance, held).
    pub fn account(&self, id: &str) -> (Decimal, Decimal) {
        let account = self.state_of(id).accounts.get(&aid(id)).unwrap();
        (account.balance, account.held)
    }

    /// All the money in the cluster.
    pub fn money(&self) -> Decimal {
        self.cores.iter().map(|c| c.state.money_total()).sum()
    }

    /// What the feeds heard of an order, as (version, status, reason).
    pub fn order_notices(&self, id: &str) -> Vec<(u64, OrderStatus, Option<Rejection>)> {
        self.notices[self.shard(id)]
            .iter()
            .filter_map(|notice| match notice {
                Notice::Order {
                    id: of,
                    status,
                    reason,
                    version,
                    ..
                } if of.as_str() == id => Some((*version, *status, *reason)),
                _ => None,
            })
            .collect()
    }

    /// The versions an account's feed was told, in order: a feed's `seq`, which
    /// must grow by one without gaps.
    pub fn account_versions(&self, id: &str) -> Vec<u64> {
        self.notices[self.shard(id)]
            .iter()
            .filter_map(|notice| match notice {
                Notice::Account { account, .. } if account.id.as_str() == id => {
                    Some(account.version)
                }
                _ => None,
            })
            .collect()
    }

    /// The state a restart of `shard` would rebuild from its journal.
    pub fn replayed(&self, shard: usize) -> State {
        let mut state = State::new(self.hash_seed);
        state.set_archived_filter_bytes(self.cores[shard].limits().archived_filter_bytes);
        for event in &self.journals[shard] {
            state.apply(event);
        }
        state
    }

    /// Replaying every journal from scratch gives the live states.
    pub fn assert_replay_matches(&self) {
        for (shard, core) in self.cores.iter().enumerate() {
            assert_eq!(self.replayed(shard), core.state, "shard {shard} replays");
        }
    }
}

pub fn aid(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}

pub fn oid(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}

pub fn sku_of(sku: &str) -> Sku {
    Sku::parse(sku).unwrap()
}
