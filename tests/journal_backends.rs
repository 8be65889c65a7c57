//! The durable journals against the real PostgreSQL server and a real SQLite file:
//! the same behaviour is asserted of both.

use std::sync::Arc;
use surge::storage::{self, StorageOptions};
use surge_actors::event::Event;
use surge_actors::journal::{JournalRecord, Snapshot, JOURNAL_FORMAT_VERSION};
use surge_actors::recovery::recover_state;
use surge_actors::state::State;
use surge_actors::{Journal, JournalError, ShardId};

mod common;

fn options(url: String) -> StorageOptions {
    StorageOptions {
        url,
        pool_connections_max: 4,
        timeout_ms: 5_000,
        records_per_write_max: 256,
        cdc_lag_limit_events: u64::MAX,
    }
}

/// A fresh PostgreSQL database for one test (left for the server's owner to
/// clean up).
async fn fresh_postgres() -> String {
    common::postgres::Database::create("surge_test").await.url
}

fn account_created(id: &str, at: u64) -> Event {
    Event::AccountCreated {
        id: surge_actors::domain::AccountId::parse(id).unwrap(),
        currency: surge_actors::domain::Currency::parse("USD").unwrap(),
        overdraft_limit: rust_decimal::Decimal::ZERO,
        at,
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one backend scenario read top to bottom"
)]
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
    let (_dir, url) = common::temp_sqlite();
    let journal = storage::open(&options(url)).await.unwrap();
    the_journal_round_trips_fences_and_snapshots(journal).await;
}

#[tokio::test]
async fn a_corrupted_record_stops_recovery_loudly() {
    let (_dir, url) = common::temp_sqlite();
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

/// Damage before the checksum was taken: a record that decodes but names an
/// account the shard never had. Recovery refuses it as corrupt, with the
/// reason, instead of panicking (the shard then stays down rather than
/// restarting into the same panic).
#[tokio::test]
async fn a_record_that_does_not_replay_is_corrupt_not_a_panic() {
    let (_dir, url) = common::temp_sqlite();
    let journal = storage::open(&options(url)).await.unwrap();
    let shard = ShardId(0);
    let epoch = journal.acquire(shard).await.unwrap();
    let stray = Event::BalanceChanged {
        account: surge_actors::domain::AccountId::parse("nobody").unwrap(),
        delta: rust_decimal::Decimal::ONE,
        at: 2,
    };
    let events = [account_created("a", 1), stray];
    journal
        .append(JournalRecord::encode(shard, epoch, 1, &events))
        .await
        .unwrap();
    let recovered = journal.load(shard).await.unwrap();
    let (state, events) = recover_state(shard, &recovered, 0).expect("it decodes");
    let rebuilt = surge_actors::recovery::rebuild_core(
        shard,
        surge_actors::Router::new(1),
        surge_actors::shard::ShardLimits::default(),
        state,
        &events,
        3,
    );
    match rebuilt {
        Err(JournalError::Corrupt(reason)) => {
            assert!(reason.contains("nobody"), "{reason}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a record naming an unknown account replayed"),
    }
}

#[tokio::test]
async fn an_unknown_storage_url_is_a_clear_error() {
    let error = match storage::open(&options("mysql://x".into())).await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("mysql is not a supported backend"),
    };
    assert!(error.contains("unsupported storage url"), "{error}");
}

/// Direct access to a journal's database, to damage it or to write rows the way
/// an older version of Surge did.
enum Db {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    async fn open(url: &str) -> Self {
        if url.starts_with("postgres") {
            Db::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        } else {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true);
            Db::Sqlite(sqlx::SqlitePool::connect_with(options).await.unwrap())
        }
    }

    /// The schema as the first release created it, before snapshots had chunks.
    async fn create_schema_before_chunking(&self) {
        match self {
            Db::Postgres(pool) => sqlx::raw_sql(include_str!(
                "../migrations/postgres/20261125000001_journal.sql"
            ))
            .execute(pool)
            .await
            .map(drop),
            Db::Sqlite(pool) => sqlx::raw_sql(include_str!(
                "../migrations/sqlite/20261125000001_journal.sql"
            ))
            .execute(pool)
            .await
            .map(drop),
        }
        .unwrap();
    }

    /// A snapshot stored as heads were before chunking: the payload inline.
    async fn insert_inline_snapshot(&self, snapshot: &Snapshot) {
        let (shard, seq) = (snapshot.shard.0 as i32, snapshot.seq as i64);
        let checksum = snapshot.checksum as i64;
        match self {
            Db::Postgres(pool) => sqlx::query(
                "INSERT INTO snapshots (shard, seq, payload, checksum) VALUES ($1, $2, $3, $4)",
            )
            .bind(shard)
            .bind(seq)
            .bind(&snapshot.payload)
            .bind(checksum)
            .execute(pool)
            .await
            .map(drop),
            Db::Sqlite(pool) => sqlx::query(
                "INSERT INTO snapshots (shard, seq, payload, checksum) VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(shard)
            .bind(seq)
            .bind(&snapshot.payload)
            .bind(checksum)
            .execute(pool)
            .await
            .map(drop),
        }
        .unwrap();
    }

    /// A record as the first release wrote it: no format column.
    async fn insert_legacy_record(&self, record: &JournalRecord) {
        let sql = "INSERT INTO journal (shard, first_seq, last_seq, epoch, payload, checksum)
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let (shard, first, last, epoch) = (
            record.shard.0 as i32,
            record.first_seq as i64,
            record.last_seq as i64,
            record.epoch as i64,
        );
        let checksum = record.checksum as i64;
        match self {
            Db::Postgres(pool) => sqlx::query(sql)
                .bind(shard)
                .bind(first)
                .bind(last)
                .bind(epoch)
                .bind(&record.payload)
                .bind(checksum)
                .execute(pool)
                .await
                .map(drop),
            Db::Sqlite(pool) => sqlx::query(&sql.replace('$', "?"))
                .bind(shard)
                .bind(first)
                .bind(last)
                .bind(epoch)
                .bind(&record.payload)
                .bind(checksum)
                .execute(pool)
                .await
                .map(drop),
        }
        .unwrap();
    }

    /// Sets the stored format of a shard's rows in `table` (`journal` or
    /// `snapshots`), as a newer Surge would have written them.
    async fn set_format(&self, table: &str, shard: ShardId, format: i32) {
        let sql = format!("UPDATE {table} SET format = $1 WHERE shard = $2");
        let updated = match self {
            Db::Postgres(pool) => sqlx::query(&sql)
                .bind(format)
                .bind(shard.0 as i32)
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
            Db::Sqlite(pool) => sqlx::query(&sql.replace('$', "?"))
                .bind(format)
                .bind(shard.0 as i32)
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert!(updated > 0, "shard {shard} has rows in {table}");
    }

    async fn delete_chunk(&self, shard: ShardId, seq: u64, chunk: i32) {
        let sql = "DELETE FROM snapshot_chunks WHERE shard = $1 AND seq = $2 AND chunk = $3";
        let deleted = match self {
            Db::Postgres(pool) => sqlx::query(sql)
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .bind(chunk)
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
            Db::Sqlite(pool) => sqlx::query(&sql.replace('$', "?"))
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .bind(chunk)
                .execute(pool)
                .await
                .unwrap()
                .rows_affected(),
        };
        assert_eq!(deleted, 1, "chunk {chunk} of snapshot {seq} was stored");
    }

    /// A chunk as a save cut short before its head leaves it.
    async fn insert_chunk(&self, shard: ShardId, seq: u64, chunk: i32) {
        let sql =
            "INSERT INTO snapshot_chunks (shard, seq, chunk, payload) VALUES ($1, $2, $3, $4)";
        let payload = vec![7u8; 1024];
        match self {
            Db::Postgres(pool) => sqlx::query(sql)
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .bind(chunk)
                .bind(&payload)
                .execute(pool)
                .await
                .map(drop),
            Db::Sqlite(pool) => sqlx::query(&sql.replace('$', "?"))
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .bind(chunk)
                .bind(&payload)
                .execute(pool)
                .await
                .map(drop),
        }
        .unwrap();
    }

    async fn chunk_rows(&self, shard: ShardId, seq: u64) -> i64 {
        let sql = "SELECT count(*) FROM snapshot_chunks WHERE shard = $1 AND seq = $2";
        match self {
            Db::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .fetch_one(pool)
                .await
                .unwrap(),
            Db::Sqlite(pool) => sqlx::query_scalar(&sql.replace('$', "?"))
                .bind(shard.0 as i32)
                .bind(seq as i64)
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    }
}

/// A state whose snapshot spans several chunks.
fn state_with_accounts(accounts: u64) -> State {
    state_with_accounts_named(accounts, "account")
}

fn state_with_accounts_named(accounts: u64, prefix: &str) -> State {
    let mut state = State::new(0);
    for i in 0..accounts {
        state.apply(&account_created(&format!("{prefix}-{i}"), i));
    }
    state
}

async fn snapshots_span_chunks_prune_them_and_survive_a_torn_newest(url: String) {
    let journal = storage::open(&options(url.clone())).await.unwrap();
    let db = Db::open(&url).await;
    let shard = ShardId(7);
    journal.acquire(shard).await.unwrap();

    let mut state = state_with_accounts(100_000);
    let first = Snapshot::encode(shard, &state);
    assert!(
        first.payload.len() > 3 * storage::SNAPSHOT_CHUNK_BYTES_MAX,
        "the test needs a snapshot of several chunks, got {} bytes",
        first.payload.len()
    );
    journal.save_snapshot(first.clone()).await.unwrap();
    let loaded = journal.load(shard).await.unwrap().snapshot.unwrap();
    assert_eq!(loaded, first);
    assert_eq!(loaded.decode().unwrap(), state);
    // Another encoding at the same sequence number replaces the first whole: one
    // head never describes chunks of two encodings.
    let mut other = state_with_accounts_named(100_000, "other");
    other.last_seq = first.seq;
    let replacement = Snapshot::encode(shard, &other);
    assert_eq!(replacement.seq, first.seq);
    assert_ne!(replacement.payload, first.payload);
    journal.save_snapshot(replacement.clone()).await.unwrap();
    assert_eq!(
        journal.load(shard).await.unwrap().snapshot,
        Some(replacement.clone())
    );
    assert_eq!(
        db.chunk_rows(shard, first.seq).await,
        chunk_count(&replacement)
    );
    journal.save_snapshot(first.clone()).await.unwrap();
    assert_eq!(
        journal.load(shard).await.unwrap().snapshot,
        Some(first.clone())
    );

    state.apply(&account_created("one-more", 100_000));
    let second = Snapshot::encode(shard, &state);
    journal.save_snapshot(second.clone()).await.unwrap();
    assert_eq!(
        journal.load(shard).await.unwrap().snapshot,
        Some(second.clone())
    );

    // A torn newest snapshot (a chunk gone) is skipped for the one before.
    db.delete_chunk(shard, second.seq, 2).await;
    assert_eq!(
        journal.load(shard).await.unwrap().snapshot,
        Some(first.clone())
    );

    // Only the two newest snapshots are kept, and the chunks of older ones go too.
    state.apply(&account_created("and-another", 100_001));
    let third = Snapshot::encode(shard, &state);
    journal.save_snapshot(third.clone()).await.unwrap();
    assert_eq!(
        journal.load(shard).await.unwrap().snapshot,
        Some(third.clone())
    );
    assert_eq!(db.chunk_rows(shard, first.seq).await, 0);
    assert_eq!(
        db.chunk_rows(shard, second.seq).await,
        chunk_count(&second) - 1
    );
    assert_eq!(db.chunk_rows(shard, third.seq).await, chunk_count(&third));
}

/// A save cut short (SQLite writes a snapshot's chunks in transactions of their
/// own, the head last) leaves chunks no head announces: never read, and gone at
/// the next save.
async fn a_save_cut_short_leaves_chunks_that_go_at_the_next_save(url: String) {
    let journal = storage::open(&options(url.clone())).await.unwrap();
    let db = Db::open(&url).await;
    let shard = ShardId(6);
    journal.acquire(shard).await.unwrap();
    let mut state = state_with_accounts(10_000);
    let first = Snapshot::encode(shard, &state);
    journal.save_snapshot(first.clone()).await.unwrap();
    let cut = first.seq + 5;
    db.insert_chunk(shard, cut, 0).await;
    assert_eq!(journal.load(shard).await.unwrap().snapshot, Some(first));
    state.apply(&account_created("last", 10_000));
    let second = Snapshot::encode(shard, &state);
    journal.save_snapshot(second.clone()).await.unwrap();
    assert_eq!(db.chunk_rows(shard, cut).await, 0);
    assert_eq!(journal.load(shard).await.unwrap().snapshot, Some(second));
}

#[tokio::test]
async fn a_postgres_save_cut_short_leaves_chunks_that_go_at_the_next_save() {
    a_save_cut_short_leaves_chunks_that_go_at_the_next_save(fresh_postgres().await).await;
}

#[tokio::test]
async fn a_sqlite_save_cut_short_leaves_chunks_that_go_at_the_next_save() {
    let (_dir, url) = common::temp_sqlite();
    a_save_cut_short_leaves_chunks_that_go_at_the_next_save(url).await;
}

fn chunk_count(snapshot: &Snapshot) -> i64 {
    snapshot
        .payload
        .len()
        .div_ceil(storage::SNAPSHOT_CHUNK_BYTES_MAX) as i64
}

/// A snapshot of several chunks is saved while the shard's appends keep coming,
/// group after group, from before the save starts until it returns: both succeed
/// (SQLite has one writer at a time; the save must get its turn, not poll for the
/// lock between commits until its busy timeout runs out).
async fn a_snapshot_saves_while_appends_keep_coming(url: String) {
    let journal = storage::open(&options(url)).await.unwrap();
    let shard = ShardId(5);
    let epoch = journal.acquire(shard).await.unwrap();
    let state = state_with_accounts(100_000);
    let snapshot = Snapshot::encode(shard, &state);
    let saved = std::sync::atomic::AtomicBool::new(false);
    let appending = tokio::sync::Notify::new();
    let appends = async {
        let mut seq = 0u64;
        while seq < 200 || !saved.load(std::sync::atomic::Ordering::Acquire) {
            seq += 1;
            if seq == 20 {
                appending.notify_one();
            }
            journal
                .append(JournalRecord::encode(
                    shard,
                    epoch,
                    seq,
                    &[account_created(&format!("late-{seq}"), seq)],
                ))
                .await
                .unwrap();
        }
        seq
    };
    let save = async {
        appending.notified().await;
        let result = journal.save_snapshot(snapshot.clone()).await;
        saved.store(true, std::sync::atomic::Ordering::Release);
        result
    };
    let (result, appended) = tokio::join!(save, appends);
    result.unwrap();
    let recovered = journal.load(shard).await.unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot));
    assert!(appended >= 200, "{appended} appends");
}

#[tokio::test]
async fn a_postgres_snapshot_saves_while_appends_keep_coming() {
    a_snapshot_saves_while_appends_keep_coming(fresh_postgres().await).await;
}

#[tokio::test]
async fn a_sqlite_snapshot_saves_while_appends_keep_coming() {
    let (_dir, url) = common::temp_sqlite();
    a_snapshot_saves_while_appends_keep_coming(url).await;
}

/// A database written before chunking (its snapshot inline) is migrated at start
/// and its snapshot still loads.
async fn a_snapshot_stored_inline_before_chunking_still_loads(url: String) {
    let db = Db::open(&url).await;
    db.create_schema_before_chunking().await;
    let shard = ShardId(2);
    let state = state_with_accounts(100);
    // Rows from before the format column are format 1: label these so (their
    // bytes are today's encoding, which decodes under either label).
    let legacy = Snapshot {
        format: 1,
        ..Snapshot::encode(shard, &state)
    };
    db.insert_inline_snapshot(&legacy).await;
    // So is a record, written after the snapshot.
    let after = vec![account_created("legacy-after", 100)];
    let legacy_record = JournalRecord {
        format: 1,
        ..JournalRecord::encode(shard, 0, state.last_seq + 1, &after)
    };
    db.insert_legacy_record(&legacy_record).await;
    let journal = storage::open(&options(url.clone())).await.unwrap();
    journal.acquire(shard).await.unwrap();
    let recovered = journal.load(shard).await.unwrap();
    let loaded = recovered.snapshot.clone().unwrap();
    assert_eq!(loaded, legacy);
    assert_eq!(loaded.decode().unwrap(), state);
    // Rows from before the format column read as format 1.
    assert_eq!(loaded.format, 1);
    assert_eq!(recovered.records, vec![legacy_record]);
    assert_eq!(recovered.records[0].format, 1);
    let (_, tail) = recover_state(shard, &recovered, 0).unwrap();
    assert_eq!(tail, after);
}

/// Records and snapshots are stored with the format they carry and load with it;
/// a row of a format this binary does not read (raised by hand, as a newer Surge
/// would have written it) stops recovery with a clear error, and a snapshot of
/// such a format is not skipped for an older one.
#[expect(
    clippy::too_many_lines,
    reason = "one backend scenario read top to bottom"
)]
async fn the_journal_format_is_stored_and_a_newer_one_stops_recovery(url: String) {
    let journal = storage::open(&options(url.clone())).await.unwrap();
    let db = Db::open(&url).await;
    let shard = ShardId(6);
    let epoch = journal.acquire(shard).await.unwrap();
    let first = vec![account_created("a", 1)];
    journal
        .append(JournalRecord::encode(shard, epoch, 1, &first))
        .await
        .unwrap();
    let mut state = State::new(0);
    state.apply(&first[0]);
    journal
        .save_snapshot(Snapshot::encode(shard, &state))
        .await
        .unwrap();
    journal
        .append(JournalRecord::encode(
            shard,
            epoch,
            2,
            &[account_created("b", 2)],
        ))
        .await
        .unwrap();
    let recovered = journal.load(shard).await.unwrap();
    assert_eq!(
        recovered.snapshot.as_ref().map(|s| s.format),
        Some(JOURNAL_FORMAT_VERSION)
    );
    assert_eq!(recovered.records.len(), 1);
    assert_eq!(recovered.records[0].format, JOURNAL_FORMAT_VERSION);
    recover_state(shard, &recovered, 0).unwrap();

    // Whatever format a record or snapshot carries is what is stored.
    let newer = JOURNAL_FORMAT_VERSION + 1;
    let other = ShardId(8);
    let other_epoch = journal.acquire(other).await.unwrap();
    let mut record = JournalRecord::encode(other, other_epoch, 1, &first);
    record.format = newer;
    journal.append(record.clone()).await.unwrap();
    assert_eq!(journal.load(other).await.unwrap().records, vec![record]);
    let mut snapshot = Snapshot::encode(ShardId(9), &state);
    snapshot.format = newer;
    journal.save_snapshot(snapshot.clone()).await.unwrap();
    assert_eq!(
        journal.load(ShardId(9)).await.unwrap().snapshot,
        Some(snapshot)
    );

    // A record of a newer format.
    db.set_format("journal", shard, 2_000).await;
    let recovered = journal.load(shard).await.unwrap();
    let error = recover_state(shard, &recovered, 0).unwrap_err();
    assert_eq!(
        error,
        JournalError::UnsupportedFormat {
            what: "record",
            shard,
            seq: 2,
            found: 2_000,
            known: JOURNAL_FORMAT_VERSION,
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("shard 6 record at sequence 2 was written by a newer Surge (format 2000;"),
        "{message}"
    );

    // A snapshot of a newer format: refused, not skipped (the records alone would
    // rebuild the shard).
    db.set_format("journal", shard, i32::from(JOURNAL_FORMAT_VERSION))
        .await;
    recover_state(shard, &journal.load(shard).await.unwrap(), 0).unwrap();
    db.set_format("snapshots", shard, 2_000).await;
    let recovered = journal.load(shard).await.unwrap();
    let error = recover_state(shard, &recovered, 0).unwrap_err();
    assert!(
        matches!(
            error,
            JournalError::UnsupportedFormat {
                what: "snapshot",
                seq: 1,
                found: 2_000,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("written by a newer Surge"),
        "{error}"
    );

    // A stored format no u16 holds is damage.
    db.set_format("journal", shard, -1).await;
    assert!(matches!(
        journal.load(shard).await,
        Err(JournalError::Corrupt(_))
    ));
}

#[tokio::test]
async fn the_postgres_journal_stores_the_format_and_a_newer_one_stops_recovery() {
    the_journal_format_is_stored_and_a_newer_one_stops_recovery(fresh_postgres().await).await;
}

#[tokio::test]
async fn the_sqlite_journal_stores_the_format_and_a_newer_one_stops_recovery() {
    let (_dir, url) = common::temp_sqlite();
    the_journal_format_is_stored_and_a_newer_one_stops_recovery(url).await;
}

#[tokio::test]
async fn postgres_snapshots_span_chunks_prune_them_and_survive_a_torn_newest() {
    snapshots_span_chunks_prune_them_and_survive_a_torn_newest(fresh_postgres().await).await;
}

#[tokio::test]
async fn sqlite_snapshots_span_chunks_prune_them_and_survive_a_torn_newest() {
    let (_dir, url) = common::temp_sqlite();
    snapshots_span_chunks_prune_them_and_survive_a_torn_newest(url).await;
}

#[tokio::test]
async fn a_postgres_snapshot_stored_inline_before_chunking_still_loads() {
    a_snapshot_stored_inline_before_chunking_still_loads(fresh_postgres().await).await;
}

#[tokio::test]
async fn a_sqlite_snapshot_stored_inline_before_chunking_still_loads() {
    let (_dir, url) = common::temp_sqlite();
    a_snapshot_stored_inline_before_chunking_still_loads(url).await;
}

/// The state after `event`, with `keys` more hashes in its filter of archived
/// keys (as evictions put them there).
fn advance(state: &mut State, event: Event, keys: std::ops::Range<u64>) {
    state.apply(&event);
    for key in keys {
        state
            .archived_keys
            .insert(xxhash_rust::xxh3::xxh3_64(&key.to_le_bytes()));
    }
}

/// Saves a snapshot of `state` as the shard does (whole, or a delta of its
/// filter) and marks it written.
async fn save(journal: &dyn Journal, shard: ShardId, state: &mut State) -> Snapshot {
    let (copy, full) = state.copy_for_snapshot();
    let snapshot = Snapshot::encode(shard, &copy);
    journal.save_snapshot(snapshot.clone()).await.unwrap();
    state.snapshot_written(snapshot.seq, full);
    snapshot
}

/// Most snapshots carry the filter of archived keys as a delta on an earlier
/// whole one (see `surge_actors::filter`): the base is kept while a kept snapshot
/// names it, loaded beside it, and recovery rebuilds the very filter; once no
/// kept snapshot names it, it goes with its chunks.
async fn delta_snapshots_keep_and_load_their_base(url: String) {
    let journal = storage::open(&options(url.clone())).await.unwrap();
    let db = Db::open(&url).await;
    let shard = ShardId(8);
    journal.acquire(shard).await.unwrap();
    let mut state = state_with_accounts(20_000);
    state.set_archived_filter_bytes(1 << 20);
    advance(&mut state, account_created("x0", 20_000), 0..10_000);

    let base = save(&*journal, shard, &mut state).await;
    assert_eq!(base.base_seq, None, "no base yet: the first is whole");
    let mut deltas = Vec::new();
    for round in 1..=3u64 {
        advance(
            &mut state,
            account_created(&format!("x{round}"), 20_000 + round),
            round * 10_000..round * 10_000 + 1_000,
        );
        let delta = save(&*journal, shard, &mut state).await;
        assert_eq!(delta.base_seq, Some(base.seq), "round {round}");
        assert!(delta.payload.len() < base.payload.len() / 2);
        deltas.push(delta);

        let recovered = journal.load(shard).await.unwrap();
        assert_eq!(recovered.snapshot.as_ref(), deltas.last());
        assert_eq!(recovered.base.as_ref(), Some(&base));
        let (rebuilt, tail) = recover_state(shard, &recovered, 0).unwrap();
        assert!(tail.is_empty());
        assert_eq!(rebuilt, state, "round {round}");
        assert!((0..10_000)
            .chain(round * 10_000..round * 10_000 + 1_000)
            .all(|key| rebuilt
                .archived_keys
                .may_contain(xxhash_rust::xxh3::xxh3_64(&key.to_le_bytes()))));
    }
    // The base outlives the snapshots between it and the newest two.
    assert_eq!(db.chunk_rows(shard, base.seq).await, chunk_count(&base));
    assert_eq!(db.chunk_rows(shard, deltas[0].seq).await, 0);

    // Hashes reaching an eighth of the filter's bytes make the next one whole;
    // once it and a delta on it are the newest two, the old base goes.
    advance(&mut state, account_created("y", 30_000), 40_000..60_000);
    let new_base = save(&*journal, shard, &mut state).await;
    assert_eq!(new_base.base_seq, None);
    advance(&mut state, account_created("z", 30_001), 60_000..60_010);
    let delta = save(&*journal, shard, &mut state).await;
    assert_eq!(delta.base_seq, Some(new_base.seq));
    assert_eq!(db.chunk_rows(shard, base.seq).await, 0);
    let recovered = journal.load(shard).await.unwrap();
    assert_eq!(recovered.base.as_ref(), Some(&new_base));
    assert_eq!(recover_state(shard, &recovered, 0).unwrap().0, state);

    // A torn base is as a torn snapshot: both kept snapshots need it, so none
    // loads (and recovery finds the journal's gap, as after any two torn).
    db.delete_chunk(shard, new_base.seq, 0).await;
    let recovered = journal.load(shard).await.unwrap();
    assert_eq!(recovered.snapshot, None);
    assert_eq!(recovered.base, None);
}

#[tokio::test]
async fn postgres_delta_snapshots_keep_and_load_their_base() {
    delta_snapshots_keep_and_load_their_base(fresh_postgres().await).await;
}

#[tokio::test]
async fn sqlite_delta_snapshots_keep_and_load_their_base() {
    let (_dir, url) = common::temp_sqlite();
    delta_snapshots_keep_and_load_their_base(url).await;
}
