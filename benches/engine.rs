//! Micro-benchmarks of the engine without I/O: a shard's decide+apply throughput
//! for payments and reservations (in-memory, as the actor drives it: commands,
//! `take_batch`, `commit`), journal record encode/decode, and routing.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rust_decimal::Decimal;
use std::hint::black_box;
use surge_actors::domain::{
    AccountId, Amount, Currency, OpId, PaymentId, Quantity, ReservationId, Sku,
};
use surge_actors::journal::JournalRecord;
use surge_actors::shard::{ShardCore, ShardLimits};
use surge_actors::state::State;
use surge_actors::{Command, Router, ShardId};

/// Commands per measured batch: what one group commit of a busy shard holds.
const BATCH_COMMANDS: usize = 1_000;
/// Accounts the payment benchmark moves money between.
const ACCOUNTS: usize = 10_000;
const AMOUNT_MAX: &str = "1000000000";

fn amount(raw: &str) -> Amount {
    Amount::parse(raw, AMOUNT_MAX.parse().expect("decimal")).expect("valid amount")
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD is a currency")
}

/// One shard that owns everything (so sagas complete inside the batch), with
/// funded accounts and a well-stocked item.
fn funded_core() -> ShardCore {
    let mut core = ShardCore::new(
        ShardId(0),
        Router::new(1),
        ShardLimits::default(),
        State::new(0),
    );
    core.advance_clock(1_000);
    let mut token = 0;
    for i in 0..ACCOUNTS {
        let account = AccountId::parse(&format!("acc-{i}")).expect("valid id");
        core.command(
            token,
            Command::CreateAccount {
                id: account.clone(),
                currency: usd(),
                overdraft_limit: Decimal::ZERO,
            },
        );
        core.command(
            token + 1,
            Command::Deposit {
                account,
                id: OpId::parse(&format!("dep-{i}")).expect("valid id"),
                amount: amount("1000000.00"),
                currency: None,
                replayable: false,
            },
        );
        token += 2;
    }
    core.command(
        token,
        Command::CreateItem {
            sku: Sku::parse("hot").expect("valid sku"),
            price: amount("1.00"),
            currency: usd(),
            stock: 1_000_000_000,
        },
    );
    let _ = core.take_batch();
    core.commit();
    core
}

/// Answers the lookups the commands handled so far are parked on, with
/// nothing found (the ids are new), so that they are decided: what a shard
/// does once the archive has answered.
fn answer_lookups(core: &mut ShardCore) {
    let keys = core.take_lookups();
    if !keys.is_empty() {
        core.looked_up(keys.into_iter().map(|key| (key, None)).collect());
    }
}

fn shard(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard");
    group.throughput(Throughput::Elements(BATCH_COMMANDS as u64));
    let mut core = funded_core();
    let mut next = 0u64;
    let accounts: Vec<AccountId> = (0..ACCOUNTS)
        .map(|i| AccountId::parse(&format!("acc-{i}")).expect("valid id"))
        .collect();
    group.bench_function("payments_decide_apply", |b| {
        b.iter(|| {
            for _ in 0..BATCH_COMMANDS {
                next += 1;
                let from = (next as usize * 7_919) % ACCOUNTS;
                let to = (from + 1 + next as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                core.command(
                    next,
                    Command::CreatePayment {
                        id: PaymentId::parse(&format!("pay-{next}")).expect("valid id"),
                        from: accounts[from].clone(),
                        to: accounts[to].clone(),
                        amount: amount("0.01"),
                        currency: usd(),
                        capture: true,
                        hold_timeout_ms: 60_000,
                    },
                );
            }
            answer_lookups(&mut core);
            black_box(core.take_batch());
            core.commit();
        })
    });
    let hot = Sku::parse("hot").expect("valid sku");
    group.bench_function("reservations_decide_apply", |b| {
        b.iter(|| {
            for _ in 0..BATCH_COMMANDS {
                next += 1;
                core.command(
                    next,
                    Command::Reserve {
                        sku: hot.clone(),
                        id: ReservationId::parse(&format!("res-{next}")).expect("valid id"),
                        quantity: Quantity::parse(1, 1_000).expect("valid quantity"),
                        ttl_ms: 60_000,
                    },
                );
            }
            answer_lookups(&mut core);
            black_box(core.take_batch());
            core.commit();
        })
    });
    group.finish();
}

fn journal(c: &mut Criterion) {
    // The events of one batch of payments, as a shard would journal them.
    let mut core = funded_core();
    for n in 0..BATCH_COMMANDS as u64 {
        core.command(
            n,
            Command::CreatePayment {
                id: PaymentId::parse(&format!("pay-{n}")).expect("valid id"),
                from: AccountId::parse(&format!("acc-{}", n % 100)).expect("valid id"),
                to: AccountId::parse(&format!("acc-{}", 100 + n % 100)).expect("valid id"),
                amount: amount("0.01"),
                currency: usd(),
                capture: true,
                hold_timeout_ms: 60_000,
            },
        );
    }
    answer_lookups(&mut core);
    let events = core.take_batch().events;
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(JournalRecord::encode(ShardId(0), 1, 1, black_box(&events))))
    });
    let record = JournalRecord::encode(ShardId(0), 1, 1, &events);
    group.bench_function("decode", |b| {
        b.iter_batched(
            || record.clone(),
            |record| black_box(record.decode().expect("record decodes")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let router = Router::new(16);
    let ids: Vec<String> = (0..BATCH_COMMANDS).map(|i| format!("acc-{i}")).collect();
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(ids.len() as u64));
    group.bench_function("shard_for", |b| {
        b.iter(|| {
            for id in &ids {
                black_box(router.shard_for(black_box(id)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, shard, journal, routing);
criterion_main!(benches);
