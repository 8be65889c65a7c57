//! Finished entities leave memory for the archive and answer exactly as before:
//! retries with the same body replay the first answer, other bodies conflict,
//! operations on them decide as they did in memory, and replay rebuilds it all.

use rust_decimal::Decimal;
use surge_actors::archive::ArchiveKey;
use surge_actors::command::{Command, Reply};
use surge_actors::domain::{AccountId, Amount, Currency, OpId, PaymentId, Quantity, ReservationId};
use surge_actors::event::Event;
use surge_actors::model::ReservationKey;
use surge_actors::order::{OrderLine, OrderTerms};
use surge_actors::shard::ShardLimits;
use surge_actors::Rejection;
mod common;
use common::{aid, oid, sku_of, Cluster, Config};

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

/// A cluster whose shards hand what finished to the archive at once.
fn archiving(shards: u32) -> Cluster {
    Cluster::with(Config {
        archiving: true,
        limits: ShardLimits {
            finished_in_memory_ms: 0,
            ..ShardLimits::default()
        },
        ..Config::new(shards)
    })
}

fn setup(world: &mut Cluster) {
    for id in ["payer", "payee"] {
        world.command(Command::CreateAccount {
            id: aid(id),
            currency: usd(),
            overdraft_limit: Decimal::ZERO,
        });
    }
    world.command(Command::Deposit {
        account: aid("payer"),
        id: OpId::parse("d1").unwrap(),
        amount: Amount::parse("1000", Decimal::MAX).unwrap(),
        currency: None,
        replayable: true,
    });
    world.command(Command::CreateItem {
        sku: sku_of("tv"),
        price: Amount::parse("10", Decimal::MAX).unwrap(),
        currency: usd(),
        stock: 100,
    });
}

fn pay(id: &str, amount: &str, capture: bool) -> Command {
    Command::CreatePayment {
        id: PaymentId::parse(id).unwrap(),
        from: AccountId::parse("payer").unwrap(),
        to: AccountId::parse("payee").unwrap(),
        amount: Amount::parse(amount, Decimal::MAX).unwrap(),
        currency: usd(),
        capture,
        hold_timeout_ms: 60_000,
    }
}

fn recalls(world: &Cluster) -> usize {
    world
        .journals
        .iter()
        .flatten()
        .filter(|event| matches!(event, Event::EntityRecalled { .. }))
        .count()
}

#[test]
fn a_settled_payment_leaves_memory_and_a_retry_replays_its_first_answer() {
    for shards in [1, 3] {
        let mut world = archiving(shards);
        setup(&mut world);
        let first = world.command(pay("p1", "25", true));
        world.run_until_quiet();
        let first = world.answer(first).clone();
        let id = PaymentId::parse("p1").unwrap();
        assert!(!world.state_of("p1").payments.contains_key(&id));
        assert!(world.archive.contains_key(&ArchiveKey::Payment(id.clone())));

        let again = world.command(pay("p1", "25", true));
        world.run_until_quiet();
        assert_eq!(world.answer(again), &first.clone().into_replayed());
        assert_eq!(recalls(&world), 1);

        let other = world.command(pay("p1", "26", true));
        world.run_until_quiet();
        assert_eq!(
            world.answer(other),
            &Reply::rejected(Rejection::IdempotencyConflict)
        );
        // The money moved once.
        assert_eq!(world.account("payer").0, Decimal::from(975));
        assert_eq!(world.account("payee").0, Decimal::from(25));
        world.assert_replay_matches();
    }
}

#[test]
fn a_capture_of_a_payment_that_left_memory_is_refused_as_it_was_in_memory() {
    let mut world = archiving(1);
    setup(&mut world);
    let token = world.command(pay("p2", "10", false));
    let authorized = world.answer(token).clone();
    assert!(matches!(authorized, Reply::Payment { .. }));
    let id = PaymentId::parse("p2").unwrap();
    // Authorized: open, so it stays.
    assert!(world.state_of("p2").payments.contains_key(&id));
    let capture = world.command(Command::CapturePayment {
        id: id.clone(),
        amount: None,
        op: Some(OpId::parse("c1").unwrap()),
    });
    let captured = world.answer(capture).clone();
    assert!(!world.state_of("p2").payments.contains_key(&id));
    // The same capture replays; a second capture is refused, as in memory.
    let again = world.command(Command::CapturePayment {
        id: id.clone(),
        amount: None,
        op: Some(OpId::parse("c1").unwrap()),
    });
    assert_eq!(world.answer(again), &captured.into_replayed());
    let second = world.command(Command::CapturePayment {
        id,
        amount: None,
        op: Some(OpId::parse("c2").unwrap()),
    });
    assert_eq!(
        world.answer(second),
        &Reply::rejected(Rejection::PaymentNotAuthorized)
    );
    world.assert_replay_matches();
}

/// Runs `scenario` on a cluster that archives and on one that keeps everything
/// in memory: every client must get the same answers from both.
///
/// A third cluster archives with a filter that has seen everything, so every
/// command that names a payment, order or reservation is looked up, found or
/// not: it must answer the same too.
fn same_answers_with_and_without_archive(scenario: impl Fn(&mut Cluster)) -> Cluster {
    let mut archived = archiving(1);
    let mut looking = archiving(1);
    for core in &mut looking.cores {
        core.state.archived_keys.saturate();
    }
    let mut kept = Cluster::new(1);
    for world in [&mut archived, &mut looking, &mut kept] {
        setup(world);
        scenario(world);
        world.run_until_quiet();
    }
    archived.assert_replay_matches();
    kept.assert_replay_matches();
    assert_eq!(archived.replies, kept.replies);
    assert_eq!(looking.replies, kept.replies);
    assert!(recalls(&archived) > 0, "the scenario recalls something");
    archived
}

#[test]
fn a_committed_reservation_and_a_confirmed_order_leave_memory_and_answer_as_in_memory() {
    let reserve = || Command::Reserve {
        sku: sku_of("tv"),
        id: ReservationId::parse("r1").unwrap(),
        quantity: Quantity::parse(2, 1_000).unwrap(),
        ttl_ms: 60_000,
    };
    let commit = || Command::CommitReservation {
        sku: sku_of("tv"),
        id: ReservationId::parse("r1").unwrap(),
        op: None,
    };
    let order = |quantity| Command::CreateOrder {
        id: oid("o1"),
        terms: OrderTerms {
            account: aid("payer"),
            merchant: aid("payee"),
            lines: vec![OrderLine {
                sku: sku_of("tv"),
                quantity: Quantity::parse(quantity, 1_000).unwrap(),
            }],
        },
        wait_ms: 10_000,
    };
    let world = same_answers_with_and_without_archive(|world| {
        world.command(reserve());
        world.command(commit());
        world.command(reserve());
        world.command(commit());
        world.command(Command::ReleaseReservation {
            sku: sku_of("tv"),
            id: ReservationId::parse("r1").unwrap(),
            op: None,
        });
        world.command(order(3));
        world.command(order(3));
        world.command(order(4));
        world.command(Command::CancelOrder {
            id: oid("o1"),
            op: None,
        });
    });
    let key = ReservationKey {
        sku: sku_of("tv"),
        id: ReservationId::parse("r1").unwrap(),
    };
    assert!(!world.state_of("tv").reservations.contains_key(&key));
    assert!(!world.state_of("o1").orders.contains_key(&oid("o1")));
    assert_eq!(world.item("tv"), (95, 0));
}

#[test]
fn a_crash_after_the_archive_has_an_entity_but_before_it_left_memory_loses_nothing() {
    let mut world = archiving(1);
    setup(&mut world);
    let first = world.command(pay("p3", "5", true));
    let first = world.answer(first).clone();
    // The journal lost the eviction (as if the crash came before it was
    // durable): the entity comes back from the journal, goes to the archive
    // again, and leaves again.
    let evicted = world.journals[0]
        .iter()
        .rposition(|event| matches!(event, Event::EntitiesArchived { .. }))
        .expect("the payment was archived");
    world.journals[0].truncate(evicted);
    world.crash(0);
    let id = PaymentId::parse("p3").unwrap();
    assert!(!world.state_of("p3").payments.contains_key(&id));
    let again = world.command(pay("p3", "5", true));
    assert_eq!(world.answer(again), &first.into_replayed());
    assert_eq!(world.account("payer").0, Decimal::from(995));
    world.assert_replay_matches();
}

#[test]
fn at_the_open_entity_ceiling_new_work_is_refused_and_everything_else_goes_on() {
    let mut world = Cluster::with(Config {
        archiving: true,
        limits: ShardLimits {
            open_entities_max: 2,
            finished_in_memory_ms: 0,
            ..ShardLimits::default()
        },
        ..Config::new(1)
    });
    setup(&mut world);
    // Two authorized holds: open, and at the ceiling.
    let first = world.command(pay("h1", "10", false));
    world.command(pay("h2", "10", false));
    assert_eq!(world.state_of("h1").open_entities(), 2);
    let refused = world.command(pay("h3", "10", false));
    assert_eq!(world.overloaded, vec![refused]);
    assert!(world.reply(refused).is_none());
    // A retry of an open one is answered, and so is work that opens nothing.
    let retry = world.command(pay("h1", "10", false));
    assert_eq!(
        world.answer(retry),
        &world.answer(first).clone().into_replayed()
    );
    let void = world.command(Command::VoidPayment {
        id: PaymentId::parse("h1").unwrap(),
        op: None,
    });
    assert!(matches!(world.answer(void), Reply::Payment { .. }));
    // The void closed one: there is room again.
    let again = world.command(pay("h3", "10", false));
    assert!(matches!(world.answer(again), Reply::Payment { .. }));
    assert_eq!(world.overloaded.len(), 1);
    world.assert_replay_matches();
}

#[test]
fn a_finished_entity_stays_in_memory_for_the_window_then_leaves() {
    let mut world = Cluster::with(Config {
        archiving: true,
        limits: ShardLimits {
            finished_in_memory_ms: 500,
            ..ShardLimits::default()
        },
        ..Config::new(1)
    });
    setup(&mut world);
    world.command(pay("w1", "1", true));
    let id = PaymentId::parse("w1").unwrap();
    world.tick(400);
    assert!(world.state_of("w1").payments.contains_key(&id));
    assert!(world.archive.is_empty());
    world.tick(200);
    // The tick hands it over; the eviction is journaled with the next write.
    world.tick(1);
    assert!(!world.state_of("w1").payments.contains_key(&id));
    assert!(world.archive.contains_key(&ArchiveKey::Payment(id)));
    world.assert_replay_matches();
}

#[test]
fn operation_records_leave_memory_and_retries_after_it_replay_or_conflict_as_in_memory() {
    let deposit = |id: &str, amount: &str| Command::Deposit {
        account: aid("payer"),
        id: OpId::parse(id).unwrap(),
        amount: Amount::parse(amount, Decimal::MAX).unwrap(),
        currency: None,
        replayable: true,
    };
    let withdraw = |amount: &str| Command::Withdraw {
        account: aid("payee"),
        id: OpId::parse("w1").unwrap(),
        amount: Amount::parse(amount, Decimal::MAX).unwrap(),
        currency: None,
        replayable: true,
    };
    let restock = |quantity| Command::Restock {
        sku: sku_of("tv"),
        quantity: Quantity::parse(quantity, 1_000).unwrap(),
        op: Some(OpId::parse("s1").unwrap()),
    };
    let commit = || Command::CommitReservation {
        sku: sku_of("tv"),
        id: ReservationId::parse("r2").unwrap(),
        op: Some(OpId::parse("k1").unwrap()),
    };
    let world = same_answers_with_and_without_archive(|world| {
        world.command(deposit("d2", "5"));
        world.command(deposit("d2", "5"));
        world.command(deposit("d2", "6"));
        // Refused (the payee has nothing): the refusal is the record.
        world.command(withdraw("1"));
        world.command(withdraw("1"));
        world.command(withdraw("2"));
        world.command(restock(3));
        world.command(restock(3));
        world.command(restock(4));
        world.command(Command::Reserve {
            sku: sku_of("tv"),
            id: ReservationId::parse("r2").unwrap(),
            quantity: Quantity::parse(1, 1_000).unwrap(),
            ttl_ms: 60_000,
        });
        world.command(commit());
        // Both the reservation and the commit's record left: found one by one.
        world.command(commit());
    });
    for shard in &world.cores {
        assert!(shard.state.ops.is_empty(), "every record left memory");
    }
    let key = |text: &str| ArchiveKey::Op(surge_actors::model::OpKey(text.into()));
    for archived in [
        "deposit/payer/d1",
        "deposit/payer/d2",
        "withdrawal/payee/w1",
    ] {
        assert!(world.archive.contains_key(&key(archived)), "{archived}");
    }
    assert!(world.archive.contains_key(&key("restock/tv/s1")));
    assert!(world.archive.contains_key(&key("commit/tv/r2/k1")));
    assert_eq!(world.account("payer").0, Decimal::from(1005));
    assert_eq!(world.item("tv"), (102, 0));
}
