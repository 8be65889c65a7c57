//! Runs payments through one shard core with no I/O, for profilers
//! (`valgrind --tool=callgrind`): `cargo run -p surge-actors --release --example
//! profile_payments -- 20000`.

use rust_decimal::Decimal;
use surge_actors::domain::{AccountId, Amount, Currency, OpId, PaymentId};
use surge_actors::shard::{ShardCore, ShardLimits};
use surge_actors::state::State;
use surge_actors::{Command, Router, ShardId};

const ACCOUNTS: usize = 10_000;
const BATCH_COMMANDS: usize = 1_000;

fn main() {
    let payments: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let usd = Currency::parse("USD").expect("USD is a currency");
    let max = Decimal::from(1_000_000_000u64);
    let mut core = ShardCore::new(
        ShardId(0),
        Router::new(1),
        ShardLimits::default(),
        State::new(0),
    );
    core.advance_clock(1_000);
    let accounts: Vec<AccountId> = (0..ACCOUNTS)
        .map(|i| AccountId::parse(&format!("acc-{i}")).expect("valid id"))
        .collect();
    for (i, account) in accounts.iter().enumerate() {
        core.command(
            0,
            Command::CreateAccount {
                id: account.clone(),
                currency: usd,
                overdraft_limit: Decimal::ZERO,
            },
        );
        core.command(
            0,
            Command::Deposit {
                account: account.clone(),
                id: OpId::parse(&format!("dep-{i}")).expect("valid id"),
                amount: Amount::parse("1000000", max).expect("amount"),
                currency: None,
                replayable: false,
            },
        );
    }
    let _ = core.take_batch();
    core.commit();
    let started = std::time::Instant::now();
    let amount = Amount::parse("0.01", max).expect("amount");
    for n in 0..payments {
        let from = (n * 7_919) % ACCOUNTS;
        let to = (from + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
        core.command(
            n as u64,
            Command::CreatePayment {
                id: PaymentId::parse(&format!("pay-{n}")).expect("valid id"),
                from: accounts[from].clone(),
                to: accounts[to].clone(),
                amount,
                currency: usd,
                capture: true,
                hold_timeout_ms: 60_000,
            },
        );
        if n % BATCH_COMMANDS == BATCH_COMMANDS - 1 {
            // The ids are new: the archive finds none of them.
            let keys = core.take_lookups();
            core.looked_up(keys.into_iter().map(|key| (key, None)).collect());
            std::hint::black_box(core.take_batch());
            core.commit();
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{payments} payments in {elapsed:?}: {:.0}/s",
        payments as f64 / elapsed.as_secs_f64()
    );
}
