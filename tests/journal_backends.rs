//! The durable journals against the real PostgreSQL server and a real SQLite file:
//! the same behaviour is asserted of both.

use std::sync::Arc;
use surge::storage::{self, StorageOptions};
use surge_actors::event::Event;
use surge_actors::journal::{recover_state, JournalRecord, Snapshot};
use surge_actors::state::State;
use surge_actors::{Journal, JournalError, ShardId};

fn options(url: String) -> StorageOptions {
    StorageOptions {
        url,
        pool_connections_max: 4,
        timeout_ms: 5_000,
        records_per_write_max: 256,
    }
}

/// A fresh PostgreSQL database for one test (created here, so ours to drop).
async fn fresh_postgres() -> String {
    let admin_url = std::env::var("SURGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("surge_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("PostgreSQL must be running for these tests (scripts/test.sh starts it)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("url has a database");
    format!("{base}/{name}")
}

fn fresh_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/journal.db", dir.path().display());
    (dir, url)
}

fn account_created(id: &str, at: u64) -> Event {
    Event::AccountCreated {
        id: surge_actors::domain::AccountId::parse(id).unwrap(),
        currency: surge_actors::domain::Currency::parse("USD").unwrap(),
        overdraft_limit: rust_decimal::Decimal::ZERO,
        at,
    }
}

async fn the_journal_round_trips_fences_and_snapshots(journal: Arc<dyn Journal>) {
    let shard = ShardId(3);
    let epoch = journal.acquire(shard).await.unwrap();
    assert_eq!(epoch, 1);

    let first = vec![account_created("a", 1), account_created("b", 2)];
    let second = vec![account_created("c", 3)];
    journal
        .append(JournalRecord::encode(shard, epoch, 1, &first))
        .await
        .unwrap();
    journal
        .append(JournalRecord::encode(shard, epoch, 3, &second))
        .await
        .unwrap();

    // Several shards' appends in flight at once go through one group write.
    let other = ShardId(4);
    let other_epoch = journal.acquire(other).await.unwrap();
    let writes = (0..20u64).map(|i| {
        let journal = journal.clone();
        async move {
            let shard = ShardId(100 + i as u32);
            let epoch = journal.acquire(shard).await.unwrap();
            journal
                .append(JournalRecord::encode(
                    shard,
                    epoch,
                    1,
                    &[account_created("x", i)],
                ))
                .await
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    journal
        .append(JournalRecord::encode(
            other,
            other_epoch,
            1,
            &[account_created("z", 9)],
        ))
        .await
        .unwrap();

    let recovered = journal.load(shard).await.unwrap();
    let (state, events) = recover_state(shard, &recovered, 0).unwrap();
    assert_eq!(state.last_seq, 0);
    assert_eq!(events.len(), 3);

    // A duplicate sequence number is refused, never silently accepted.
    assert!(journal
        .append(JournalRecord::encode(shard, epoch, 3, &second))
        .await
        .is_err());

    // A new owner fences the old one.
    let newer = journal.acquire(shard).await.unwrap();
    assert_eq!(newer, 2);
    let stale = journal
        .append(JournalRecord::encode(shard, epoch, 4, &second))
        .await;
    assert!(
        matches!(stale, Err(JournalError::Fenced { .. })),
        "{stale:?}"
    );

    // Snapshots: the newest plus the journal after it rebuild the same state.
    let mut live = State::new(0);
    for event in &events {
        live.apply(event);
    }
    journal
        .save_snapshot(Snapshot::encode(shard, &live))
        .await
        .unwrap();
    let after = vec![account_created("d", 4)];
    journal
        .append(JournalRecord::encode(shard, newer, 4, &after))
        .await
        .unwrap();
    live.apply(&after[0]);
    let recovered = journal.load(shard).await.unwrap();
    assert_eq!(recovered.snapshot.as_ref().map(|s| s.seq), Some(3));
    let (mut rebuilt, tail) = recover_state(shard, &recovered, 0).unwrap();
    for event in &tail {
        rebuilt.apply(event);
    }
    assert_eq!(rebuilt, live);
}

#[tokio::test]
async fn the_postgres_journal_round_trips_fences_and_snapshots() {
    let url = fresh_postgres().await;
    let journal = storage::open(&options(url)).await.unwrap();
    the_journal_round_trips_fences_and_snapshots(journal).await;
}

#[tokio::test]
async fn the_sqlite_journal_round_trips_fences_and_snapshots() {
    let (_dir, url) = fresh_sqlite();
    let journal = storage::open(&options(url)).await.unwrap();
    the_journal_round_trips_fences_and_snapshots(journal).await;
}

#[tokio::test]
async fn a_corrupted_record_stops_recovery_loudly() {
    let (_dir, url) = fresh_sqlite();
    let journal = storage::open(&options(url.clone())).await.unwrap();
    let shard = ShardId(0);
    let epoch = journal.acquire(shard).await.unwrap();
    journal
        .append(JournalRecord::encode(
            shard,
            epoch,
            1,
            &[account_created("a", 1)],
        ))
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE journal SET payload = X'00' || payload")
        .execute(&pool)
        .await
        .unwrap();
    let recovered = journal.load(shard).await.unwrap();
    let error = recover_state(shard, &recovered, 0).unwrap_err();
    assert!(matches!(error, JournalError::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn an_unknown_storage_url_is_a_clear_error() {
    let error = match storage::open(&options("mysql://x".into())).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("mysql is not a supported backend"),
    };
    assert!(error.contains("unsupported storage url"), "{error}");
}
