//! The SQLite journal (embedded default): WAL mode, full synchronous commits.

use super::archive::{ArchiveBackend, ArchiveRow, ArchiveWorkers, Found};
use super::changes::{ChangeLog, ChangeRow};
use super::writer::{GroupWriter, WriteRecords};
use super::{
    checksum_from_sql, checksum_to_sql, format_from_sql, format_to_sql, snapshot_chunk_count,
    snapshot_chunks, timeout, unavailable, valid_snapshot, ChunkAssembler, StorageOptions,
};
use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::TryStreamExt as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use surge_actors::archive::{ArchiveKey, Archived};
use surge_actors::journal::{JournalRecord, Lookups, Recovered, Snapshot};
use surge_actors::{Journal, JournalError, ShardId};

pub struct SqliteJournal {
    pool: SqlitePool,
    writer: GroupWriter,
    write_turn: WriteTurn,
    archive: ArchiveWorkers,
    cdc_lag_limit_events: u64,
}

/// The archive's tables: written on a connection of their own, in the writer's
/// turn, and read on the pool.
struct Archive {
    write_pool: SqlitePool,
    pool: SqlitePool,
    write_turn: WriteTurn,
}

struct Writer {
    /// A single connection: SQLite has one writer at a time anyway.
    pool: SqlitePool,
    write_turn: WriteTurn,
}

/// Whose turn it is to write. SQLite has one writer at a time, and a writer that
/// finds the lock taken polls for it with growing sleeps (the busy handler): a
/// snapshot save behind a journal writer that commits group after group can keep
/// missing the gaps until its busy timeout runs out. Every write transaction takes
/// this first-come-first-served lock, so they queue here instead and the busy
/// handler only ever waits for a reader's checkpoint.
type WriteTurn = Arc<tokio::sync::Mutex<()>>;

impl SqliteJournal {
    pub async fn open(options: &StorageOptions) -> anyhow::Result<Self> {
        let connect = SqliteConnectOptions::from_str(&options.url)
            .context("invalid SQLite url")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (fsync of the WAL) before it returns.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(timeout(options));
        if let Some(parent) = connect.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.pool_connections_max.max(1))
            .acquire_timeout(timeout(options))
            .connect_with(connect.clone())
            .await
            .with_context(|| format!("cannot open SQLite database {}", options.url))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .context("SQLite migrations failed")?;
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout(options))
            .connect_with(connect.clone())
            .await
            .context("cannot open the SQLite writer connection")?;
        // The archive's own writer connection, with NORMAL synchronous commits: no
        // fsync of its own. The shard lets archived entities leave memory only by
        // journaling `EntitiesArchived` after this commit returns, and the
        // journal writer's FULL commit of it syncs the same WAL file, these
        // frames included. A crash before then loses the round and the eviction
        // alike, and the round goes again.
        let archive_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout(options))
            .connect_with(connect.clone().synchronous(SqliteSynchronous::Normal))
            .await
            .context("cannot open the SQLite archive connection")?;
        let write_turn = WriteTurn::default();
        let archive = ArchiveWorkers::start(Arc::new(Archive {
            write_pool: archive_pool,
            pool: pool.clone(),
            write_turn: write_turn.clone(),
        }));
        let writer = GroupWriter::start(
            Arc::new(Writer {
                pool: write_pool,
                write_turn: write_turn.clone(),
            }),
            options.records_per_write_max,
        );
        Ok(Self {
            pool,
            writer,
            write_turn,
            archive,
            cdc_lag_limit_events: options.cdc_lag_limit_events,
        })
    }
}

impl WriteRecords for Writer {
    fn write(
        &self,
        records: Vec<JournalRecord>,
    ) -> BoxFuture<'_, Result<Vec<Result<(), JournalError>>, JournalError>> {
        Box::pin(async move {
            // One transaction, one fsync, for the whole group.
            let _turn = self.write_turn.lock().await;
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            let mut results = Vec::with_capacity(records.len());
            for record in &records {
                let inserted = sqlx::query(
                    "INSERT INTO journal (shard, first_seq, last_seq, epoch, payload, checksum, format,
                                          changes)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                     WHERE EXISTS (SELECT 1 FROM shard_leases WHERE shard = ?1 AND epoch = ?4)",
                )
                .bind(record.shard.0 as i64)
                .bind(record.first_seq as i64)
                .bind(record.last_seq as i64)
                .bind(record.epoch as i64)
                .bind(record.payload.as_slice())
                .bind(checksum_to_sql(record.checksum))
                .bind(format_to_sql(record.format))
                .bind(record.changes.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
                results.push(if inserted == 1 {
                    Ok(())
                } else {
                    Err(JournalError::Fenced {
                        shard: record.shard,
                        attempted: record.epoch,
                        current: 0,
                    })
                });
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(results)
        })
    }
}

impl Journal for SqliteJournal {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>> {
        let pool = self.pool.clone();
        let write_turn = self.write_turn.clone();
        Box::pin(async move {
            let _turn = write_turn.lock().await;
            let epoch: i64 = sqlx::query_scalar(
                "INSERT INTO shard_leases (shard, epoch) VALUES (?1, 1)
                 ON CONFLICT (shard) DO UPDATE
                 SET epoch = epoch + 1, acquired_at = CURRENT_TIMESTAMP
                 RETURNING epoch",
            )
            .bind(shard.0 as i64)
            .fetch_one(&pool)
            .await
            .map_err(unavailable)?;
            Ok(epoch as u64)
        })
    }

    fn append(&self, record: JournalRecord) -> BoxFuture<'static, Result<(), JournalError>> {
        self.writer.append(record)
    }

    fn archive(
        &self,
        shard: ShardId,
        entities: Vec<Archived>,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        self.archive.store(shard, entities)
    }

    fn lookup(&self, keys: Vec<ArchiveKey>) -> BoxFuture<'static, Result<Lookups, JournalError>> {
        self.archive.lookup(keys)
    }

    fn ping(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }

    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Recovered, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            // One consistent view of snapshots and journal (in WAL mode a read
            // transaction sees the database as of its first read): a snapshot saved
            // meanwhile prunes the older snapshot and the journal before it, which
            // separate reads could see half of.
            let mut tx = pool.begin().await.map_err(unavailable)?;
            let (snapshot, base) = load_snapshot(&mut tx, shard).await?;
            let after = snapshot.as_ref().map_or(0, |s| s.seq) as i64;
            let rows = sqlx::query(
                "SELECT first_seq, last_seq, epoch, payload, checksum, format FROM journal
                 WHERE shard = ?1 AND last_seq > ?2 ORDER BY first_seq",
            )
            .bind(shard.0 as i64)
            .bind(after)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            let records = rows
                .into_iter()
                .map(|row| {
                    let first_seq: i64 = row.get(0);
                    Ok(JournalRecord {
                        shard,
                        first_seq: first_seq as u64,
                        last_seq: row.get::<i64, _>(1) as u64,
                        epoch: row.get::<i64, _>(2) as u64,
                        format: format_from_sql(shard, "record", first_seq, row.get(5))?,
                        payload: row.get(3),
                        checksum: checksum_from_sql(row.get::<i64, _>(4)),
                        changes: None,
                    })
                })
                .collect::<Result<_, JournalError>>()?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Recovered {
                snapshot,
                base,
                records,
            })
        })
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'static, Result<(), JournalError>> {
        let pool = self.pool.clone();
        let cdc_lag_limit_events = self.cdc_lag_limit_events;
        let write_turn = self.write_turn.clone();
        Box::pin(async move {
            let shard = snapshot.shard.0 as i64;
            let seq = snapshot.seq as i64;
            // A snapshot at this sequence number may be stored already (asked for
            // twice with nothing in between, or a torn one that recovery skipped).
            // It is replaced whole: the same state can encode to other bytes (map
            // order), and one head must never describe chunks of two encodings.
            // (Gone first: a crash before the new head leaves the snapshots
            // before it, whose journal is kept.)
            let mut write = begin_write(&pool, &write_turn).await?;
            for table in ["snapshots", "snapshot_chunks"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE shard = ?1 AND seq = ?2"
                ))
                .bind(shard)
                .bind(seq)
                .execute(&mut *write.tx)
                .await
                .map_err(unavailable)?;
            }
            write.commit().await?;
            // The chunks, a few per transaction, each taking its turn at the one
            // write lock, so that the journal's group commits run in between:
            // one transaction of 78 MB held the lock for a second, and every
            // commit of every shard waited behind it. Chunks no head announces
            // (a crash before the head) are never read, and go at the next save.
            let chunks: Vec<(i32, &[u8])> = snapshot_chunks(&snapshot.payload).collect();
            for group in chunks.chunks(SNAPSHOT_CHUNKS_PER_TRANSACTION) {
                let mut write = begin_write(&pool, &write_turn).await?;
                for (index, chunk) in group {
                    sqlx::query(
                        "INSERT INTO snapshot_chunks (shard, seq, chunk, payload)
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .bind(shard)
                    .bind(seq)
                    .bind(index)
                    .bind(*chunk)
                    .execute(&mut *write.tx)
                    .await
                    .map_err(unavailable)?;
                }
                write.commit().await?;
            }
            // The head goes last: recovery only looks for chunks a head announces.
            let mut write = begin_write(&pool, &write_turn).await?;
            sqlx::query(
                "INSERT INTO snapshots (shard, seq, payload, checksum, chunks, bytes, format, base_seq)
                 VALUES (?1, ?2, X'', ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(shard)
            .bind(seq)
            .bind(checksum_to_sql(snapshot.checksum))
            .bind(snapshot_chunk_count(&snapshot.payload))
            .bind(snapshot.payload.len() as i64)
            .bind(format_to_sql(snapshot.format))
            .bind(snapshot.base_seq.map(|base| base as i64))
            .execute(&mut *write.tx)
            .await
            .map_err(unavailable)?;
            let cdc_keep_after = snapshot.seq.saturating_sub(cdc_lag_limit_events) as i64;
            prune_before_snapshots(&mut write.tx, shard, cdc_keep_after).await?;
            write.commit().await
        })
    }
}

/// Chunks (of at most 1 MiB) written per transaction of a snapshot save.
const SNAPSHOT_CHUNKS_PER_TRANSACTION: usize = 4;

/// A write transaction begun on this writer's turn, which it holds until the
/// transaction is done (fields drop in order: the transaction, then the turn).
struct WriteTx<'a> {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::MutexGuard<'a, ()>,
}

impl WriteTx<'_> {
    /// Commits, and gives the turn up with it.
    async fn commit(self) -> Result<(), JournalError> {
        self.tx.commit().await.map_err(unavailable)
    }
}

async fn begin_write<'a>(
    pool: &SqlitePool,
    write_turn: &'a WriteTurn,
) -> Result<WriteTx<'a>, JournalError> {
    let turn = write_turn.lock().await;
    let tx = pool.begin().await.map_err(unavailable)?;
    Ok(WriteTx { tx, _turn: turn })
}

/// Keeps the newest two snapshots of a shard, the bases they name (see
/// `surge_actors::filter`) and the journal after the older of the two (recovery
/// falls back to it if the newest is torn); drops the rest. Journal rows a change
/// data capture cursor of the shard has not passed stay too, unless they end at
/// or before `cdc_keep_after` (the lag limit: see `cdc::Tailer`).
async fn prune_before_snapshots(
    conn: &mut SqliteConnection,
    shard: i64,
    cdc_keep_after: i64,
) -> Result<(), JournalError> {
    sqlx::query(
        "DELETE FROM snapshots WHERE shard = ?1
         AND seq < (SELECT min(seq) FROM (SELECT seq FROM snapshots WHERE shard = ?1
                                          ORDER BY seq DESC LIMIT 2))
         AND seq NOT IN (SELECT base_seq FROM (SELECT base_seq FROM snapshots WHERE shard = ?1
                                               ORDER BY seq DESC LIMIT 2)
                         WHERE base_seq IS NOT NULL)",
    )
    .bind(shard)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "DELETE FROM snapshot_chunks WHERE shard = ?1
         AND seq NOT IN (SELECT seq FROM snapshots WHERE shard = ?1)",
    )
    .bind(shard)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "DELETE FROM journal WHERE shard = ?1
         AND last_seq <= (SELECT min(seq) FROM (SELECT seq FROM snapshots WHERE shard = ?1
                                                ORDER BY seq DESC LIMIT 2))
         AND (SELECT count(*) FROM snapshots WHERE shard = ?1) >= 2
         AND (NOT EXISTS (SELECT 1 FROM cdc_cursors WHERE shard = ?1)
              OR last_seq <= max((SELECT min(seq) FROM cdc_cursors WHERE shard = ?1), ?2))",
    )
    .bind(shard)
    .bind(cdc_keep_after)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

const SNAPSHOT_HEAD: &str =
    "SELECT seq, payload, checksum, chunks, bytes, format, base_seq FROM snapshots";

/// The newest snapshot whose payload is complete and whose checksum holds, with
/// the base it names; a torn or corrupt newest snapshot (or base) falls back to
/// the one before (whose journal is kept).
async fn load_snapshot(
    conn: &mut SqliteConnection,
    shard: ShardId,
) -> Result<(Option<Snapshot>, Option<Snapshot>), JournalError> {
    let heads = sqlx::query(&format!(
        "{SNAPSHOT_HEAD} WHERE shard = ?1 ORDER BY seq DESC LIMIT 2"
    ))
    .bind(shard.0 as i64)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    for head in heads {
        let Some(snapshot) = read_snapshot(conn, shard, &head).await? else {
            continue;
        };
        let Some(base_seq) = snapshot.base_seq else {
            return Ok((Some(snapshot), None));
        };
        let base_head = sqlx::query(&format!("{SNAPSHOT_HEAD} WHERE shard = ?1 AND seq = ?2"))
            .bind(shard.0 as i64)
            .bind(base_seq as i64)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        let base = match base_head {
            Some(base_head) => read_snapshot(conn, shard, &base_head).await?,
            None => None,
        };
        match base {
            Some(base) if base.base_seq.is_none() => return Ok((Some(snapshot), Some(base))),
            _ => {
                tracing::error!(%shard, seq = snapshot.seq, base_seq, "snapshot's base missing or torn; using an older snapshot")
            }
        }
    }
    Ok((None, None))
}

/// The snapshot a head row describes, its chunks read and checked (`None`: torn
/// or corrupt).
async fn read_snapshot(
    conn: &mut SqliteConnection,
    shard: ShardId,
    head: &SqliteRow,
) -> Result<Option<Snapshot>, JournalError> {
    let seq: i64 = head.get(0);
    let chunks: i32 = head.get(3);
    let payload = if chunks == 0 {
        Some(head.get::<Vec<u8>, _>(1))
    } else {
        let mut assembler = ChunkAssembler::new(chunks, head.get(4));
        let mut rows = sqlx::query(
            "SELECT chunk, payload FROM snapshot_chunks
             WHERE shard = ?1 AND seq = ?2 ORDER BY chunk",
        )
        .bind(shard.0 as i64)
        .bind(seq)
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            if !assembler.push(row.get(0), row.get::<&[u8], _>(1)) {
                break;
            }
        }
        assembler.finish()
    };
    let checksum = checksum_from_sql(head.get::<i64, _>(2));
    let format = format_from_sql(shard, "snapshot", seq, head.get(5))?;
    let base_seq = head.get::<Option<i64>, _>(6).map(|base| base as u64);
    Ok(valid_snapshot(
        shard, seq as u64, format, payload, checksum, base_seq,
    ))
}

/// Ids per `IN (…)` list: far below SQLite's limit on bound parameters.
const IDS_PER_QUERY_MAX: usize = 500;

/// Rows per `INSERT`: six parameters each, far below SQLite's limit of 32,766.
const ROWS_PER_INSERT_MAX: usize = 1_000;

impl ArchiveBackend for Archive {
    fn store(
        &self,
        rows: Vec<(&'static str, Vec<ArchiveRow>)>,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let _turn = self.write_turn.lock().await;
            let mut tx = self.write_pool.begin().await.map_err(unavailable)?;
            for (table, rows) in rows {
                // Many rows per statement: each statement is a round trip to
                // sqlx's SQLite thread, and the journal's writer waits for this
                // turn.
                for chunk in rows.chunks(ROWS_PER_INSERT_MAX) {
                    let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
                    let insert = format!(
                        "INSERT OR IGNORE INTO {table} (id, shard, status, finished_at, format, body)
                         VALUES {values}"
                    );
                    let mut query = sqlx::query(&insert);
                    for row in chunk {
                        query = query
                            .bind(row.id.as_str())
                            .bind(row.shard)
                            .bind(row.status)
                            .bind(row.finished_at)
                            .bind(row.format)
                            .bind(row.body.as_slice());
                    }
                    query.execute(&mut *tx).await.map_err(unavailable)?;
                }
            }
            tx.commit().await.map_err(unavailable)
        })
    }

    fn find(
        &self,
        table: &'static str,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Found, JournalError>> {
        Box::pin(async move {
            let mut found = HashMap::new();
            for chunk in ids.chunks(IDS_PER_QUERY_MAX) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let select = format!("SELECT id, format, body FROM {table} WHERE id IN ({marks})");
                let mut query = sqlx::query(&select);
                for id in chunk {
                    query = query.bind(id);
                }
                let rows = query.fetch_all(&self.pool).await.map_err(unavailable)?;
                for row in rows {
                    found.insert(row.get(0), (row.get(1), row.get(2)));
                }
            }
            Ok(found)
        })
    }
}

impl ChangeLog for SqliteJournal {
    fn read_changes(
        &self,
        shard: ShardId,
        after: u64,
        rows_max: usize,
    ) -> BoxFuture<'static, Result<Vec<ChangeRow>, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT first_seq, last_seq,
                        CAST((julianday(written_at) - 2440587.5) * 86400000.0 AS INTEGER), changes
                 FROM journal WHERE shard = ?1 AND last_seq > ?2
                 ORDER BY first_seq LIMIT ?3",
            )
            .bind(shard.0 as i64)
            .bind(after as i64)
            .bind(rows_max as i64)
            .fetch_all(&pool)
            .await
            .map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|row| ChangeRow {
                    first_seq: row.get::<i64, _>(0) as u64,
                    last_seq: row.get::<i64, _>(1) as u64,
                    written_at_ms: row.get::<i64, _>(2).max(0) as u64,
                    changes: row.get(3),
                })
                .collect())
        })
    }

    fn head(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let head: i64 = sqlx::query_scalar(
                "SELECT max(
                     COALESCE((SELECT last_seq FROM journal WHERE shard = ?1
                               ORDER BY first_seq DESC LIMIT 1), 0),
                     COALESCE((SELECT max(seq) FROM snapshots WHERE shard = ?1), 0))",
            )
            .bind(shard.0 as i64)
            .fetch_one(&pool)
            .await
            .map_err(unavailable)?;
            Ok(head.max(0) as u64)
        })
    }

    fn cursor(
        &self,
        sink: &str,
        shard: ShardId,
    ) -> BoxFuture<'static, Result<Option<u64>, JournalError>> {
        let (pool, sink) = (self.pool.clone(), sink.to_owned());
        Box::pin(async move {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM cdc_cursors WHERE sink = ?1 AND shard = ?2")
                    .bind(sink)
                    .bind(shard.0 as i64)
                    .fetch_optional(&pool)
                    .await
                    .map_err(unavailable)?;
            Ok(seq.map(|seq| seq.max(0) as u64))
        })
    }

    fn store_cursor(
        &self,
        sink: &str,
        shard: ShardId,
        seq: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let (pool, write_turn, sink) =
            (self.pool.clone(), self.write_turn.clone(), sink.to_owned());
        Box::pin(async move {
            let mut write = begin_write(&pool, &write_turn).await?;
            sqlx::query(
                "INSERT INTO cdc_cursors (sink, shard, seq, updated_at)
                 VALUES (?1, ?2, ?3, CAST(strftime('%s', 'now') AS INTEGER))
                 ON CONFLICT (sink, shard) DO UPDATE
                 SET seq = excluded.seq, updated_at = excluded.updated_at",
            )
            .bind(sink)
            .bind(shard.0 as i64)
            .bind(seq as i64)
            .execute(&mut *write.tx)
            .await
            .map_err(unavailable)?;
            write.commit().await
        })
    }
}
