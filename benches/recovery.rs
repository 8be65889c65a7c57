//! Recovery benchmark: how long a shard holding 1,000,000 accounts takes to
//! restart (load the newest snapshot, decode it, replay the journal after it).
//!
//! `cargo bench --bench recovery` (SQLite in a temp dir). Set
//! `RECOVERY_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1/postgres` to also
//! run it against a fresh PostgreSQL database. `RECOVERY_BENCH_ACCOUNTS` changes
//! the size, `RECOVERY_BENCH_TAIL_EVENTS` the journal after the snapshot.

use std::sync::Arc;
use std::time::Instant;
use surge::storage::{self, StorageOptions};
use surge_actors::domain::{AccountId, Currency};
use surge_actors::engine::{ControlReply, ControlRequest};
use surge_actors::event::Event;
use surge_actors::journal::JournalRecord;
use surge_actors::{Engine, EngineConfig, Journal, ShardId};

const EVENTS_PER_RECORD: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account_events(from: usize, to: usize) -> Vec<Event> {
    let usd = Currency::parse("USD").unwrap();
    (from..to)
        .flat_map(|i| {
            let id = AccountId::parse(&format!("account-{i:08}")).unwrap();
            [
                Event::AccountCreated {
                    id: id.clone(),
                    currency: usd,
                    overdraft_limit: rust_decimal::Decimal::ZERO,
                    at: 1_700_000_000_000,
                },
                Event::BalanceChanged {
                    account: id,
                    delta: rust_decimal::Decimal::new(10_000, 2),
                    at: 1_700_000_000_000,
                },
            ]
        })
        .collect()
}

async fn fill(
    journal: &Arc<dyn Journal>,
    shard: ShardId,
    epoch: u64,
    events: Vec<Event>,
    next_seq: &mut u64,
) {
    for chunk in events.chunks(EVENTS_PER_RECORD) {
        journal
            .append(JournalRecord::encode(shard, epoch, *next_seq, chunk))
            .await
            .expect("append");
        *next_seq += chunk.len() as u64;
    }
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this file too,
/// without it, as a quick smoke of the same code on a small shard.
fn smoke() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

#[expect(
    clippy::too_many_lines,
    reason = "a benchmark scenario read top to bottom"
)]
async fn run(label: &str, url: String) {
    let (accounts_default, tail_default) = if smoke() {
        (10_000, 1_000)
    } else {
        (1_000_000, 100_000)
    };
    let accounts = env_usize("RECOVERY_BENCH_ACCOUNTS", accounts_default);
    let tail_accounts = env_usize("RECOVERY_BENCH_TAIL_EVENTS", tail_default) / 2;
    let options = StorageOptions {
        url,
        pool_connections_max: 4,
        timeout_ms: 60_000,
        records_per_write_max: 64,
        cdc_lag_limit_events: u64::MAX,
    };
    let journal = storage::open(&options).await.expect("storage opens");
    let shard = ShardId(0);
    let epoch = journal.acquire(shard).await.unwrap();
    let mut next_seq = 1;
    let started = Instant::now();
    fill(
        &journal,
        shard,
        epoch,
        account_events(0, accounts - tail_accounts),
        &mut next_seq,
    )
    .await;
    println!(
        "[{label}] journal filled with {} events in {:?}",
        next_seq - 1,
        started.elapsed()
    );

    let config = EngineConfig {
        shards: 1,
        journal_timeout_ms: 120_000,
        reply_timeout_ms: 120_000,
        snapshot_every_events: u64::MAX,
        snapshot_interval_s: u64::MAX / 2,
        ..EngineConfig::default()
    };
    let engine = Engine::start(config, journal.clone());
    // First start replays the whole journal.
    let replay = engine
        .control(shard, ControlRequest::Restart)
        .await
        .unwrap();
    println!("[{label}] recovery from the journal alone: {replay:?}");
    let started = Instant::now();
    let snapshot = engine
        .control(shard, ControlRequest::Snapshot)
        .await
        .unwrap();
    println!(
        "[{label}] snapshot {snapshot:?} written in {:?}",
        started.elapsed()
    );

    // More history after the snapshot, written behind the engine's back the way a
    // crashed process would have left it: the restart must replay it.
    let ControlReply::Snapshot { snapshot_seq } = snapshot else {
        unreachable!()
    };
    let mut next_seq = snapshot_seq + 1;
    let epoch = epoch + 1;
    let restart_epoch = journal.acquire(shard).await.unwrap();
    assert!(restart_epoch >= epoch);
    fill(
        &journal,
        shard,
        restart_epoch,
        account_events(accounts - tail_accounts, accounts),
        &mut next_seq,
    )
    .await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        match engine
            .control(shard, ControlRequest::Restart)
            .await
            .unwrap()
        {
            ControlReply::Restarted {
                recovered_seq,
                recovery_ms,
            } => {
                runs.push(recovery_ms);
                println!("[{label}] restart: recovered_seq {recovered_seq} in {recovery_ms} ms");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let status = &engine.shard_status()[0];
    assert_eq!(
        status.accounts as usize, accounts,
        "every account recovered"
    );
    runs.sort_unstable();
    println!(
        "[{label}] RESULT accounts={accounts} snapshot_seq={snapshot_seq} tail_events={} restart_ms_median={} restart_ms_max={}",
        tail_accounts * 2,
        runs[1],
        runs[2]
    );
}

fn main() {
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            format!("sqlite://{}/recovery.db", dir.path().display()),
        )
        .await;
        // The smoke run under `cargo test` covers PostgreSQL when the test script
        // provides one.
        let postgres = std::env::var("RECOVERY_BENCH_POSTGRES_URL").or_else(|error| {
            if smoke() {
                std::env::var("SURGE_TEST_POSTGRES_URL")
            } else {
                Err(error)
            }
        });
        if let Ok(admin_url) = postgres {
            let name = format!("surge_recovery_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            run("postgres", format!("{base}/{name}")).await;
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&pool)
                .await
                .unwrap();
        }
    });
}
