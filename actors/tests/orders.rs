//! The order saga on real shard cores, with messages pumped by hand and time
//! moved by hand: every path of the saga, deterministic, and a crash in the
//! middle of it.

use rust_decimal::Decimal;
use std::collections::VecDeque;
use surge_actors::command::{Command, Reply};
use surge_actors::domain::{AccountId, Amount, Currency, OpId, OrderId, Quantity, Sku};
use surge_actors::event::Event;
use surge_actors::order::{OrderLine, OrderStatus, OrderTerms};
use surge_actors::router::{Router, ShardId};
use surge_actors::shard::{ShardCore, ShardLimits, ShardMessage, Token};
use surge_actors::state::State;
use surge_actors::Rejection;

const SHARDS: u32 = 4;

/// Shards whose batches always commit; messages wait in a queue until pumped.
struct World {
    cores: Vec<ShardCore>,
    /// Every event each shard journaled, for replay checks.
    journals: Vec<Vec<Event>>,
    in_flight: VecDeque<(ShardId, ShardMessage)>,
    replies: Vec<(Token, Reply)>,
    now: u64,
    next_token: Token,
}

impl World {
    fn new() -> Self {
        let router = Router::new(SHARDS);
        let limits = ShardLimits {
            order_timeout_ms: 5_000,
            step_resend_ms: 1_000,
            ..ShardLimits::default()
        };
        Self {
            cores: (0..SHARDS)
                .map(|i| ShardCore::new(ShardId(i), router, limits.clone(), State::new(0)))
                .collect(),
            journals: (0..SHARDS).map(|_| Vec::new()).collect(),
            in_flight: VecDeque::new(),
            replies: Vec::new(),
            now: 1_000_000,
            next_token: 0,
        }
    }

    fn shard(&self, key: &str) -> usize {
        Router::new(SHARDS).shard_for(key).0 as usize
    }

    fn flush(&mut self, index: usize) {
        let batch = self.cores[index].take_batch();
        self.cores[index].commit();
        self.journals[index].extend(batch.events);
        self.replies.extend(batch.replies);
        for envelope in batch.messages {
            self.in_flight.push_back((envelope.to, envelope.message));
        }
    }

    fn command(&mut self, command: Command) -> Token {
        let index = self.shard(command.route_key());
        let token = self.next_token;
        self.next_token += 1;
        self.cores[index].advance_clock(self.now);
        self.cores[index].command(token, command);
        self.flush(index);
        token
    }

    /// Delivers messages until none are left (or `limit` deliveries).
    fn pump(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some((to, message)) = self.in_flight.pop_front() else {
                return;
            };
            let index = to.0 as usize;
            self.cores[index].advance_clock(self.now);
            self.cores[index].message(message);
            self.flush(index);
        }
    }

    fn tick_all(&mut self, advance_ms: u64) {
        self.now += advance_ms;
        for index in 0..self.cores.len() {
            self.cores[index].advance_clock(self.now);
            self.cores[index].tick();
            self.flush(index);
        }
    }

    fn reply(&self, token: Token) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, r)| r)
    }

    fn order(&self, id: &str) -> surge_actors::order::Order {
        let index = self.shard(id);
        let order = self.cores[index].state.orders.get(&oid(id)).unwrap();
        (**order).clone()
    }

    fn item(&self, sku: &str) -> (u64, u64) {
        let index = self.shard(sku);
        let item = self.cores[index].state.items.get(&sku_of(sku)).unwrap();
        (item.on_hand, item.reserved)
    }

    fn account(&self, id: &str) -> (Decimal, Decimal) {
        let index = self.shard(id);
        let account = self.cores[index].state.accounts.get(&aid(id)).unwrap();
        (account.balance, account.held)
    }

    fn money(&self) -> Decimal {
        self.cores.iter().map(|c| c.state.money_total()).sum()
    }

    /// A crash of one shard: everything in memory goes; the journal is replayed.
    fn crash(&mut self, index: usize) {
        let router = Router::new(SHARDS);
        let limits = self.cores[index].limits().clone();
        let mut core = ShardCore::new(ShardId(index as u32), router, limits, State::new(0));
        core.replay(&self.journals[index]);
        core.advance_clock(self.now);
        core.redrive();
        self.cores[index] = core;
        self.flush(index);
    }

    /// Replaying every journal from scratch gives the same states.
    fn assert_replay_matches(&self) {
        for (index, journal) in self.journals.iter().enumerate() {
            let mut state = State::new(0);
            for event in journal {
                state.apply(event);
            }
            assert_eq!(state, self.cores[index].state, "shard {index} replays");
        }
    }

    fn setup(&mut self, funds: &str, items: &[(&str, &str, u64)]) {
        for id in ["buyer", "merchant"] {
            self.command(Command::CreateAccount {
                id: aid(id),
                currency: usd(),
                overdraft_limit: Decimal::ZERO,
            });
        }
        self.command(Command::Deposit {
            account: aid("buyer"),
            id: OpId::parse("d1").unwrap(),
            amount: Amount::parse(funds, Decimal::MAX).unwrap(),
            currency: None,
            replayable: true,
        });
        for (sku, price, stock) in items {
            self.command(Command::CreateItem {
                sku: sku_of(sku),
                price: Amount::parse(price, Decimal::MAX).unwrap(),
                currency: usd(),
                stock: *stock,
            });
        }
    }
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}
fn aid(id: &str) -> AccountId {
    AccountId::parse(id).unwrap()
}
fn oid(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}
fn sku_of(sku: &str) -> Sku {
    Sku::parse(sku).unwrap()
}

fn create_order(id: &str, lines: &[(&str, u32)]) -> Command {
    Command::CreateOrder {
        id: oid(id),
        terms: OrderTerms {
            account: aid("buyer"),
            merchant: aid("merchant"),
            lines: lines
                .iter()
                .map(|(sku, quantity)| OrderLine {
                    sku: sku_of(sku),
                    quantity: Quantity::parse(u64::from(*quantity), 1_000).unwrap(),
                })
                .collect(),
        },
        wait_ms: 10_000,
    }
}

fn order_status(reply: &Reply) -> (OrderStatus, Option<Rejection>) {
    match reply {
        Reply::Order { order, .. } => (order.status, order.reason),
        other => panic!("expected an order, got {other:?}"),
    }
}

#[test]
fn a_confirmed_order_commits_the_stock_and_moves_the_total_to_the_merchant() {
    let mut world = World::new();
    world.setup("100", &[("tv", "30.00", 5), ("cable", "2.50", 10)]);
    let money = world.money();
    let token = world.command(create_order("o1", &[("tv", 2), ("cable", 4)]));
    world.pump(1_000);
    assert_eq!(
        order_status(world.reply(token).unwrap()),
        (OrderStatus::Confirmed, None)
    );
    let order = world.order("o1");
    assert_eq!(order.total, Some(Decimal::new(7000, 2)));
    assert_eq!(world.item("tv"), (3, 0));
    assert_eq!(world.item("cable"), (6, 0));
    assert_eq!(
        world.account("buyer"),
        (Decimal::new(3000, 2), Decimal::ZERO)
    );
    assert_eq!(world.account("merchant").0, Decimal::new(7000, 2));
    assert_eq!(world.money(), money);
    world.assert_replay_matches();
}

#[test]
fn a_cancel_while_lines_are_reserving_waits_for_them_and_gives_them_back() {
    let mut world = World::new();
    world.setup("100", &[("tv", "30.00", 5), ("cable", "2.50", 10)]);
    let order = world.command(create_order("o2", &[("tv", 1), ("cable", 1)]));
    // The reservation requests are in flight, not delivered yet.
    let cancel = world.command(Command::CancelOrder {
        id: oid("o2"),
        op: None,
    });
    assert!(
        world.reply(cancel).is_none(),
        "the cancel waits for the end"
    );
    world.pump(1_000);
    assert_eq!(
        order_status(world.reply(order).unwrap()),
        (OrderStatus::Cancelled, None)
    );
    assert_eq!(
        order_status(world.reply(cancel).unwrap()),
        (OrderStatus::Cancelled, None)
    );
    assert_eq!(world.item("tv"), (5, 0));
    assert_eq!(world.item("cable"), (10, 0));
    assert_eq!(world.account("buyer"), (Decimal::from(100), Decimal::ZERO));
    let again = world.command(Command::CancelOrder {
        id: oid("o2"),
        op: None,
    });
    assert_eq!(
        world.reply(again).unwrap().rejection(),
        Some(Rejection::OrderAlreadyFinal)
    );
    world.assert_replay_matches();
}

#[test]
fn a_cancel_after_the_hold_releases_the_money_and_then_the_stock() {
    let mut world = World::new();
    world.setup("100", &[("tv", "30.00", 5)]);
    let order = world.command(create_order("o3", &[("tv", 1)]));
    // Deliver until the order holds money but has not been validated: the hold
    // request is answered, its reply is still in flight.
    for _ in 0..100 {
        if world.account("buyer").1 > Decimal::ZERO {
            break;
        }
        world.pump(1);
    }
    assert_eq!(world.account("buyer").1, Decimal::from(30), "money is held");
    let cancel = world.command(Command::CancelOrder {
        id: oid("o3"),
        op: None,
    });
    world.pump(1_000);
    assert_eq!(
        order_status(world.reply(cancel).unwrap()),
        (OrderStatus::Cancelled, None)
    );
    assert_eq!(
        order_status(world.reply(order).unwrap()),
        (OrderStatus::Cancelled, None)
    );
    assert_eq!(world.account("buyer"), (Decimal::from(100), Decimal::ZERO));
    assert_eq!(world.item("tv"), (5, 0));
    let history: Vec<OrderStatus> = world.order("o3").history.iter().map(|h| h.0).collect();
    assert_eq!(
        history,
        [
            OrderStatus::Pending,
            OrderStatus::Reserved,
            OrderStatus::Cancelled
        ]
    );
}

#[test]
fn an_order_whose_item_shard_never_answers_expires_once_it_does() {
    let mut world = World::new();
    world.setup("100", &[("tv", "30.00", 5)]);
    let order = world.command(create_order("o4", &[("tv", 1)]));
    // The item shard is unreachable: its messages are lost, and so are resends.
    world.in_flight.clear();
    world.tick_all(5_001);
    world.in_flight.clear();
    assert!(world.order("o4").ending_requested.is_some());
    assert!(
        !world.order("o4").is_final(),
        "waits for the reservation answer"
    );
    // The item shard is back: the resent request reserves, the order releases.
    world.tick_all(1_000);
    world.pump(1_000);
    assert_eq!(
        order_status(world.reply(order).unwrap()),
        (OrderStatus::Expired, None)
    );
    assert_eq!(world.item("tv"), (5, 0));
    world.assert_replay_matches();
}

#[test]
fn a_crash_of_any_shard_mid_saga_still_ends_every_order_exactly_once() {
    for victim in 0..SHARDS as usize {
        for cut in 0..12 {
            let mut world = World::new();
            world.setup("100", &[("tv", "30.00", 3), ("cable", "2.50", 10)]);
            let money = world.money();
            world.command(create_order("a", &[("tv", 1), ("cable", 2)]));
            world.command(create_order("b", &[("tv", 5)]));
            world.pump(cut);
            world.crash(victim);
            // Messages that were in flight to the crashed shard are lost too.
            world.in_flight.retain(|(to, _)| to.0 as usize != victim);
            for _ in 0..5 {
                world.tick_all(1_000);
                world.pump(1_000);
            }
            let a = world.order("a");
            let b = world.order("b");
            assert!(a.is_final() && b.is_final(), "victim {victim} cut {cut}");
            assert_eq!(
                a.status,
                OrderStatus::Confirmed,
                "victim {victim} cut {cut}"
            );
            assert_eq!(
                (b.status, b.reason),
                (OrderStatus::Rejected, Some(Rejection::OutOfStock))
            );
            assert_eq!(world.item("tv"), (2, 0));
            assert_eq!(world.item("cable"), (8, 0));
            assert_eq!(
                world.account("buyer"),
                (Decimal::new(6500, 2), Decimal::ZERO)
            );
            assert_eq!(world.money(), money);
            world.assert_replay_matches();
        }
    }
}

#[test]
fn a_second_cancel_with_its_own_key_answers_cancelled_again_when_retried() {
    let mut world = World::new();
    world.setup("100", &[("tv", "30.00", 5)]);
    world.command(create_order("o5", &[("tv", 1)]));
    // Both cancels arrive while the reservation is in flight: the second joins
    // the first's end.
    let cancel = |op: &str| Command::CancelOrder {
        id: oid("o5"),
        op: Some(OpId::parse(op).unwrap()),
    };
    let first = world.command(cancel("c1"));
    let second = world.command(cancel("c2"));
    world.pump(1_000);
    for token in [first, second] {
        assert_eq!(
            order_status(world.reply(token).unwrap()),
            (OrderStatus::Cancelled, None)
        );
    }
    // Seed 10 of the simulator: the retry of the second cancel found no record of
    // its key and was refused `order_already_final`.
    let retry = world.command(cancel("c2"));
    assert_eq!(
        order_status(world.reply(retry).unwrap()),
        (OrderStatus::Cancelled, None)
    );
    world.assert_replay_matches();
}
